//! Status writes by server-side apply under Flotilla's field manager, counted (writes and bytes)
//! per writer. Shared by the controllers so every status write is measured the same way.
use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use flotilla_api::labels::FIELD_MANAGER;

use crate::context::Context;
use crate::error::{Error, Result};

/// Applies `status` as the whole of Flotilla's part of `name`'s status (fields it no longer sets
/// are removed, fields other managers own are kept). Not written without the leader Lease.
pub async fn apply_status<K, S>(
    ctx: &Context,
    writer: &'static str,
    api: &Api<K>,
    name: &str,
    status: &S,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + ResourceExt + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    ctx.lease
        .fence(api.patch_status(name, &params, &Patch::Apply(&patch)))
        .await?
        .map_err(Error::HostApi)?;
    ctx.metrics.status_written(writer, patch.to_string().len());
    Ok(())
}
