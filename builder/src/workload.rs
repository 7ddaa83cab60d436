//! The guest init's workload description (`/etc/enclave/workload.json`, see
//! guest-init/README.md), made from the last OCI image's config in stage 1 and placed in the
//! root tree in stage 2.

/// Where the guest init's workload description goes.
pub const WORKLOAD_PATH: &str = "/etc/enclave/workload.json";

/// The guest init's `workload.json` (see guest-init/README.md) from an OCI image config: the
/// fields it reads, with their OCI names, in a fixed order.
pub fn workload_json(config: &oci_spec::image::ImageConfiguration) -> anyhow::Result<Vec<u8>> {
    let mut map = serde_json::Map::new();
    if let Some(c) = config.config() {
        if let Some(v) = c.entrypoint() {
            map.insert("Entrypoint".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.cmd() {
            map.insert("Cmd".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.env() {
            map.insert("Env".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.working_dir() {
            map.insert("WorkingDir".into(), serde_json::to_value(v)?);
        }
        if let Some(v) = c.user() {
            map.insert("User".into(), serde_json::to_value(v)?);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(map))?;
    bytes.push(b'\n');
    Ok(bytes)
}
