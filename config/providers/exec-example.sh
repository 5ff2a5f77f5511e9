#!/bin/sh
# An example program for the `exec` pool provider (docs/POOLS.md, "Providers").
#
# gpuwarden runs it with one JSON object on stdin whose "action" is provision, terminate
# or list, and reads one JSON object from stdout. This example keeps its "machines" as
# files in $MACHINES_DIR instead of calling a cloud: replace the marked lines with your
# infrastructure's commands (a cloud CLI, Terraform, an IPMI call, …).
#
#   [pools.train.provider]          # in the control plane's config
#   kind = "exec"
#   params = { provision = "/etc/gpuwarden/providers/exec-example.sh",
#              terminate = "/etc/gpuwarden/providers/exec-example.sh",
#              list      = "/etc/gpuwarden/providers/exec-example.sh",
#              timeout   = "120s",
#              env       = { MACHINES_DIR = "/var/lib/gpuwarden/example-machines" } }
#
# A failure is a non-zero exit with {"error":{"kind":…,"message":…}} on stdout. To try
# the error paths, write a kind (capacity, quota, auth, rate_limited, unavailable, …) into
# $MACHINES_DIR/fail-ACTION: the next call of ACTION fails with it.
set -eu

dir=${MACHINES_DIR:?set MACHINES_DIR in the env param of the provider}
mkdir -p "$dir"
input=$(cat)

# The value of a string field of the (single-line) JSON on stdin.
field() {
    printf '%s' "$input" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

fail() { # kind message
    printf '{"error":{"kind":"%s","message":"%s"}}\n' "$1" "$2"
    exit 1
}

action=$(field action)
if [ -f "$dir/fail-$action" ]; then
    kind=$(cat "$dir/fail-$action")
    rm -f "$dir/fail-$action"
    fail "$kind" "injected $kind failure ($dir/fail-$action)"
fi

case "$action" in
provision)
    instance=$(field instance_id)
    [ -n "$instance" ] || fail invalid_request "no instance_id on stdin"
    id="m-$instance"
    # The same instance again (gpuwarden retried after a lost answer): the same machine.
    if [ -f "$dir/$id" ] && grep -q '^state=running$' "$dir/$id"; then
        printf '{"provider_id":"%s"}\n' "$id"
        exit 0
    fi
    # --- a real provider creates the machine here, handing it the join token through
    # user data or a file with mode 600 (never a command-line argument). The machine's
    # agent then runs with:
    #   GPUWARDEN_CONTROL_PLANE__TOKEN=<join_token> gpuwarden-agent \
    #       --control-plane <control_plane_url>   (and node.id = <node_name>)
    umask 077
    printf '%s\n' "$(field join_token)" >"$dir/$id.token"
    printf 'instance_id=%s\nnode_name=%s\ncontrol_plane_url=%s\nstate=running\n' \
        "$instance" "$(field node_name)" "$(field control_plane_url)" >"$dir/$id"
    printf '{"provider_id":"%s"}\n' "$id"
    ;;
terminate)
    id=$(field provider_id)
    case "$id" in m-*) ;; *) fail invalid_request "not a machine of this provider: $id" ;; esac
    [ -f "$dir/$id" ] || fail not_found "no machine $id"
    # --- a real provider deletes the machine here.
    sed 's/^state=.*/state=gone/' "$dir/$id" >"$dir/$id.new" && mv "$dir/$id.new" "$dir/$id"
    rm -f "$dir/$id.token"
    echo '{}'
    ;;
list)
    # --- a real provider lists its machines that carry gpuwarden's instance id here.
    printf '{"instances":['
    sep=
    for f in "$dir"/m-*; do
        [ -f "$f" ] || continue
        case "$f" in *.token | *.new) continue ;; esac
        instance=$(sed -n 's/^instance_id=//p' "$f")
        state=$(sed -n 's/^state=//p' "$f")
        printf '%s{"provider_id":"%s","instance_id":"%s","state":"%s"}' \
            "$sep" "$(basename "$f")" "$instance" "$state"
        sep=,
    done
    printf ']}\n'
    ;;
*)
    fail invalid_request "unknown action: $action"
    ;;
esac
