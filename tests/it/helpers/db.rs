//! A throwaway database per test, on the server `DATABASE_URL` names
//! (scripts/test starts a private one). Databases are copied from a migrated
//! template, built once per migration set under an advisory lock so that
//! parallel test processes do not race.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use callvisor::db::migrate;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    /// Connection URL of this database.
    pub url: String,
    name: String,
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

fn server_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests through scripts/test, which starts a private PostgreSQL",
    )
}

fn admin_connection() -> PgConnection {
    let url = with_database(&server_url(), "postgres");
    PgConnection::establish(&url).unwrap_or_else(|e| panic!("cannot reach PostgreSQL: {e}"))
}

fn fresh_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The migrated template's name, created on first use.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        migrate::embedded_versions().hash(&mut hasher);
        let name = format!("callvisor_tmpl_{:016x}", hasher.finish());
        let mut admin = admin_connection();
        admin
            .batch_execute("SELECT pg_advisory_lock(424242)")
            .unwrap();
        let exists = diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        ));
        let exists: bool = diesel::select(exists).get_result(&mut admin).unwrap();
        if !exists {
            // Build under another name and rename when complete, so a crash
            // mid-build never leaves a half-migrated template behind.
            let building = format!("{name}_building");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {building}"))
                .unwrap();
            {
                let mut conn =
                    PgConnection::establish(&with_database(&server_url(), &building)).unwrap();
                migrate::run_pending(&mut conn).unwrap();
            }
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .unwrap();
        }
        admin
            .batch_execute("SELECT pg_advisory_unlock(424242)")
            .unwrap();
        name
    })
}

use diesel::RunQueryDsl;

impl TestDb {
    /// A new database with every migration applied.
    pub fn migrated() -> Self {
        let template = template();
        let name = fresh_name("t");
        let mut admin = admin_connection();
        let mut tries = 0;
        // Concurrent copies of one template can collide briefly; retry.
        while let Err(e) =
            admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        {
            tries += 1;
            assert!(tries < 20, "cannot create test database: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self::named(name)
    }

    /// A new, empty database (no migrations).
    pub fn empty() -> Self {
        let name = fresh_name("e");
        admin_connection()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Self::named(name)
    }

    fn named(name: String) -> Self {
        Self {
            url: with_database(&server_url(), &name),
            name,
        }
    }

    /// A blocking connection to this database.
    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&with_database(&server_url(), "postgres")) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
