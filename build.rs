//! `embed_migrations!` reads `migrations/` at compile time but cargo does not
//! know that: tell it, so a new migration file triggers a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
