//! The diesel schema, shared by both backends: `migrations/sqlite` and `migrations/postgres`
//! create the same tables with the same column types (times are Unix milliseconds in
//! `BIGINT`; JSON documents are text).
#![allow(missing_docs)]

diesel::table! {
    nodes (id) {
        id -> Text,
        name -> Text,
        pool -> Text,
        labels -> Text,
        address -> Nullable<Text>,
        status -> Text,
        health -> Text,
        connectivity -> Text,
        capabilities -> Text,
        source -> Text,
        agent_instance -> Nullable<Text>,
        event_cursor -> BigInt,
        deregistered -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_seen -> Nullable<BigInt>,
        instance_id -> Nullable<Text>,
    }
}

diesel::table! {
    node_tokens (digest) {
        digest -> Text,
        node_id -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    admin_tokens (digest) {
        digest -> Text,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        node_id -> Text,
        gpu -> Nullable<Integer>,
        uuid -> Nullable<Text>,
        kind -> Text,
        code -> Nullable<BigInt>,
        message -> Text,
        severity -> Text,
        action -> Text,
        time -> BigInt,
        agent_instance -> Text,
        agent_seq -> BigInt,
        source -> Text,
    }
}

diesel::table! {
    /// GPUs a node is expected to have: the most it registered with, or an operator's count.
    expected_gpus (node_id) {
        node_id -> Text,
        gpus -> Integer,
        updated_at -> BigInt,
    }
}

diesel::table! {
    observations (node_id, gpu) {
        node_id -> Text,
        gpu -> Integer,
        uuid -> Text,
        model -> Text,
        body -> Text,
        observed_at -> BigInt,
    }
}

diesel::table! {
    transitions (id) {
        id -> BigInt,
        node_id -> Text,
        field -> Text,
        from_state -> Text,
        to_state -> Text,
        reason -> Text,
        actor -> Text,
        time -> BigInt,
    }
}

diesel::table! {
    commands (id) {
        id -> Text,
        node_id -> Text,
        kind -> Text,
        params -> Text,
        state -> Text,
        attempts -> Integer,
        result -> Nullable<Text>,
        requested_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        next_attempt_at -> BigInt,
        completed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit (id) {
        id -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Text,
        details -> Text,
        result -> Text,
        time -> BigInt,
    }
}

diesel::table! {
    /// Pools: the spec (JSON), where it comes from, and the pool manager's state.
    pools (name) {
        name -> Text,
        spec -> Text,
        source -> Text,
        source_file -> Nullable<Text>,
        manual_target -> Nullable<Integer>,
        demand_pending -> Nullable<BigInt>,
        demand_at -> Nullable<BigInt>,
        last_target -> Nullable<Integer>,
        last_scale_up -> Nullable<BigInt>,
        last_scale_down -> Nullable<BigInt>,
        select_state -> Text,
        status -> Text,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// The last decisions of each pool (target, reasons, actions, counts as JSON).
    pool_decisions (id) {
        id -> BigInt,
        pool -> Text,
        time -> BigInt,
        target -> Integer,
        reasons -> Text,
        actions -> Text,
        counts -> Text,
    }
}

diesel::table! {
    /// Machines asked of providers, recorded before the provider is called.
    instances (id) {
        id -> Text,
        pool -> Text,
        provider -> Text,
        provider_id -> Nullable<Text>,
        state -> Text,
        node_id -> Nullable<Text>,
        token_digest -> Nullable<Text>,
        error -> Nullable<Text>,
        attempts -> Integer,
        created_at -> BigInt,
        state_since -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(pool_decisions -> pools (pool));
diesel::joinable!(node_tokens -> nodes (node_id));
diesel::joinable!(events -> nodes (node_id));
diesel::joinable!(observations -> nodes (node_id));
diesel::joinable!(expected_gpus -> nodes (node_id));
diesel::joinable!(transitions -> nodes (node_id));
diesel::joinable!(commands -> nodes (node_id));

diesel::table! {
    /// Tokens created through the API: admin or viewer, only their digest kept.
    api_tokens (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        digest -> Text,
        created_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Plugin components uploaded to the control plane, by SHA-256.
    plugin_blobs (digest) {
        digest -> Text,
        name -> Text,
        size -> BigInt,
        data -> Binary,
        uploaded_by -> Text,
        uploaded_at -> BigInt,
    }
}

diesel::table! {
    /// Which plugin runs on a pool's nodes (`*`: every node), pinned to a digest.
    plugin_assignments (pool, name) {
        pool -> Text,
        name -> Text,
        digest -> Text,
        config -> Text,
        interval_ms -> Nullable<BigInt>,
        timeout_ms -> Nullable<BigInt>,
        memory_limit_mib -> Nullable<Integer>,
        assigned_by -> Text,
        assigned_at -> BigInt,
    }
}

diesel::table! {
    /// What each agent last reported it runs.
    node_plugins (node_id, name) {
        node_id -> Text,
        name -> Text,
        source -> Text,
        running -> Nullable<Text>,
        status -> Nullable<Text>,
        message -> Text,
        error -> Nullable<Text>,
        reported_at -> BigInt,
    }
}

diesel::joinable!(node_plugins -> nodes (node_id));

diesel::allow_tables_to_appear_in_same_query!(
    plugin_blobs,
    plugin_assignments,
    node_plugins,
    nodes,
    node_tokens,
    admin_tokens,
    events,
    expected_gpus,
    observations,
    transitions,
    commands,
    audit,
    pools,
    pool_decisions,
    instances,
);

diesel::table! {
    /// Operators' remediation budgets over the configured ones; scope `fleet` or `pool:NAME`.
    remediation_budgets (scope) {
        scope -> Text,
        max_percent -> Double,
        max_nodes -> Integer,
        set_by -> Text,
        set_at -> BigInt,
    }
}

diesel::table! {
    /// Held nodes an operator released: remediated past the budget at the next evaluation.
    remediation_releases (node_id) {
        node_id -> Text,
        pool -> Text,
        released_by -> Text,
        released_at -> BigInt,
    }
}

diesel::table! {
    /// Each pool's utilization samples (the predictive autoscaler's window).
    pool_utilization (pool, time) {
        pool -> Text,
        time -> BigInt,
        ratio -> Double,
    }
}
