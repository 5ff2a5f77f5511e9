//! Joining: what an agent sends to `POST /v1/nodes/register` and what it reads back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A GPU as the agent reports it when registering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GpuInfo {
    /// Index on the node.
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Product name.
    pub model: String,
    /// Framebuffer memory in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
}

/// What an agent says about its node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// The GPUs.
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
    /// NVIDIA driver version.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// CUDA version the driver supports.
    #[serde(default)]
    pub cuda_version: Option<String>,
    /// Host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// IP addresses.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// GPU backend the agent runs (`nvml` or `fake`).
    #[serde(default)]
    pub backend: Option<String>,
    /// Version of the agent.
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// Body of `POST /v1/nodes/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The node's name (the agent's `node.id`).
    pub name: String,
    /// Base URL the control plane scrapes, like `http://10.0.0.5:9410`.
    pub address: String,
    /// Pool; `None` keeps the node's (or `default`).
    #[serde(default)]
    pub pool: Option<String>,
    /// Labels, merged over the node's.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// GPUs, versions, host facts.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// What the agent reads from the answer of `POST /v1/nodes/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The node's id.
    pub node_id: String,
    /// The node's token: authenticates this agent as this node.
    pub node_token: String,
    /// How often the control plane scrapes the agent.
    pub scrape_interval_seconds: f64,
    /// How often the agent should check that the control plane still knows it.
    pub check_interval_seconds: f64,
}
