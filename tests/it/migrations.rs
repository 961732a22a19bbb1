//! Migrations: up, down, up again on an empty database, and the embedded set
//! is exactly what `migrations/` holds.

use callvisor::db::migrate;
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};

use crate::helpers::db::TestDb;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn user_tables(conn: &mut diesel::PgConnection) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .get_result::<Count>(conn)
    .unwrap()
    .n
}

#[test]
fn up_down_up_on_an_empty_database() {
    // Arrange
    let db = TestDb::empty();
    let mut conn = db.connect();
    let all = migrate::embedded_versions();
    // Act + Assert: up
    let applied = migrate::run_pending(&mut conn).unwrap();
    assert_eq!(applied, all);
    let tables = user_tables(&mut conn);
    assert!(tables >= 9, "the schema's tables exist: {tables}");
    // down
    let reverted = migrate::revert_all(&mut conn).unwrap();
    assert_eq!(reverted.len(), all.len());
    assert_eq!(
        user_tables(&mut conn),
        0,
        "down.sql must really reverse up.sql"
    );
    // up again
    let again = migrate::run_pending(&mut conn).unwrap();
    assert_eq!(again, all);
    assert_eq!(user_tables(&mut conn), tables);
    assert!(
        migrate::run_pending(&mut conn).unwrap().is_empty(),
        "idempotent"
    );
}

#[test]
fn the_embedded_set_equals_the_migrations_directory() {
    let mut on_disk: Vec<String> = std::fs::read_dir("migrations")
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().join("up.sql").exists())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: String = name
                .split('_')
                .next()
                .unwrap()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            assert!(
                entry.path().join("down.sql").exists(),
                "{name} has no down.sql"
            );
            version
        })
        .collect();
    on_disk.sort();
    assert_eq!(migrate::embedded_versions(), on_disk);
    assert_eq!(migrate::latest_version(), on_disk.last().cloned());
}
