//! The database half of `/readyz`: reachable, and migrated to this binary's
//! newest version.

use std::time::Duration;

use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{AsyncPool, DbError};

#[derive(QueryableByName)]
struct Newest {
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
}

/// What the database says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStatus {
    /// The newest applied migration, if any.
    pub applied: Option<String>,
}

/// Asks the database for its newest applied migration, within `timeout`.
pub async fn check(pool: &AsyncPool, timeout: Duration) -> Result<DbStatus, DbError> {
    let work = async {
        let mut conn = pool.get().await?;
        let newest: Newest =
            diesel::sql_query("SELECT max(version) AS version FROM __diesel_schema_migrations")
                .get_result(&mut conn)
                .await?;
        Ok(DbStatus {
            applied: newest.version,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| DbError::Timeout(timeout))?
}
