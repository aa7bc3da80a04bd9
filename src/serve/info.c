/* Informational routes of `cocoon serve`: capabilities (/v1/config), the caller
 * (/v1/me), the OpenAPI document, health, and metrics of the runtime and of one box. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/idempotency.h"
#include "serve/serve.h"
#include "serve/xreg.h"
#include "util/util.h"

/* docs/openapi.yaml, built into the program (src/serve/openapi_blob.S). */
extern const char cocoon_openapi_yaml[];
extern const char cocoon_openapi_yaml_end[];

int handle_config(struct req *r)
{
    json_t *caps =
        json_pack("{s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b}", "snapshots_enabled", 1, "clone_enabled", 1,
                  "export_enabled", 1, "import_enabled", 1, "volumes_enabled", 0, "tunnels_enabled", 0,
                  "websocket_attach", 1, "ndjson_output", 1, "run_to_completion", 1, "image_pull", 1, "image_load", 1);
    json_object_set_new(caps, "max_cpus", json_integer(64));
    json_object_set_new(caps, "tty_enabled", json_true());
    json_object_set_new(caps, "streaming_enabled", json_true());
    json_object_set_new(caps, "idempotency_key_lifetime", json_integer(IDEMPOTENCY_TTL_S));
    json_t *defaults = json_pack("{s:i,s:i,s:s}", "cpus", 1, "memory_mib", 512, "image", "default");
    json_t *limits =
        json_pack("{s:i,s:i,s:i,s:I,s:I,s:i,s:i}", "max_cpus", 64, "max_memory_mib", 1048576, "max_running_executions",
                  XREG_RUNNING_MAX, "max_json_body_bytes", (json_int_t)SERVE_JSON_MAX, "max_upload_bytes",
                  (json_int_t)serve_cfg.max_upload, "exec_output_buffer_bytes", XREG_OUT_MAX, "max_connections",
                  (int)serve_cfg.max_connections);
    json_t *body =
        json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:b}", "server", "cocoon", "version", cocoon_version(), "api_version", "v1",
                  "capabilities", caps, "defaults", defaults, "limits", limits, "auth_required", serve_cfg.need_token);
    return serve_json(r, 200, body);
}

int handle_me(struct req *r)
{
    /* One user: whoever can reach the socket or holds the token. */
    return serve_json(r, 200,
                      json_pack("{s:s,s:s,s:s,s:s,s:n,s:[s]}", "sub", "local", "id", "local", "principal_type", "user",
                                "kind", "user", "path_prefix", "scopes", "*:*"));
}

int handle_openapi(struct req *r)
{
    size_t len = (size_t)(cocoon_openapi_yaml_end - cocoon_openapi_yaml);
    return serve_text(r, 200, "application/yaml", cocoon_openapi_yaml, len);
}

int handle_health(struct req *r) { return serve_json(r, 200, json_pack("{s:s}", "status", "ok")); }

int handle_metrics(struct req *r)
{
    cocoon_runtime *rt;
    if (serve_runtime(r, &rt) < 0)
        return -1;
    cocoon_box_info *list;
    size_t n;
    cocoon_error err;
    if (cocoon_box_list(rt, &list, &n, &err) < 0) {
        cocoon_runtime_close(rt);
        return serve_cocoon_error(r, &err);
    }
    size_t running = 0;
    for (size_t i = 0; i < n; i++)
        running += list[i].running != 0;
    cocoon_box_list_free(list);
    cocoon_runtime_close(rt);
    struct serve_stats s;
    pthread_mutex_lock(&serve_counters_lock);
    s = serve_counters;
    pthread_mutex_unlock(&serve_counters_lock);
    json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "boxes_created_total",
                          (json_int_t)s.boxes_created, "boxes_failed_total", (json_int_t)s.boxes_failed,
                          "boxes_stopped_total", (json_int_t)s.boxes_stopped, "num_running_boxes", (json_int_t)running,
                          "num_boxes", (json_int_t)n, "total_commands_executed", (json_int_t)s.execs_started,
                          "total_exec_errors", (json_int_t)s.exec_errors, "running_executions",
                          (json_int_t)xreg_running(), "http_requests_total", (json_int_t)s.requests, "http_4xx_total",
                          (json_int_t)s.errors_4xx, "http_5xx_total", (json_int_t)s.errors_5xx, "uptime_seconds",
                          (double)(util_now_ns(CLOCK_MONOTONIC) - s.started_ns) / 1e9);
    return serve_json(r, 200, j);
}

int handle_box_metrics(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    struct serve_box_counters c;
    serve_box_counters_get(cocoon_box_id(box), &c);
    json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:I}", "box_id", cocoon_box_id(box), "commands_executed_total",
                          (json_int_t)c.commands, "exec_errors_total", (json_int_t)c.errors, "bytes_sent_total",
                          (json_int_t)c.bytes_in, "bytes_received_total", (json_int_t)c.bytes_out);
    cocoon_error err;
    cocoon_box_info info;
    if (cocoon_box_inspect(box, &info, &err) == 0 && info.running) {
        if (info.ready_ms >= 0)
            json_object_set_new(j, "boot_timing",
                                json_pack("{s:i,s:I,s:I}", "guest_boot_ms", info.ready_ms, "kernel_boot_ms",
                                          (json_int_t)info.boot_ms, "agent_init_ms", (json_int_t)info.init_ms));
        cocoon_stats st;
        if (cocoon_box_stats(box, &st, &err) == 0) {
            double busy = st.uptime_seconds > 0 && st.cpus ? st.cpu_seconds / (st.uptime_seconds * st.cpus) : 0;
            json_object_set_new(j, "cpu_percent", json_real(busy * 100.0));
            json_object_set_new(j, "memory_bytes", json_integer((json_int_t)st.mem_used));
            json_object_set_new(j, "memory_total_bytes", json_integer((json_int_t)st.mem_total));
            json_object_set_new(j, "disk_used_bytes", json_integer((json_int_t)st.disk_used));
            json_object_set_new(j, "disk_total_bytes", json_integer((json_int_t)st.disk_total));
            json_object_set_new(j, "processes", json_integer(st.processes));
            json_object_set_new(j, "uptime_seconds", json_real(st.uptime_seconds));
            json_object_set_new(j, "load1", json_real(st.load1));
        }
    }
    cocoon_net_stats ns;
    if (cocoon_box_net_stats(box, &ns, &err) == 0 && ns.present) {
        json_object_set_new(j, "network_bytes_sent", json_integer((json_int_t)ns.bytes_in));
        json_object_set_new(j, "network_bytes_received", json_integer((json_int_t)ns.bytes_out));
        json_object_set_new(j, "network_tcp_connections", json_integer((json_int_t)ns.tcp_connections));
        json_object_set_new(j, "network_denied_total", json_integer((json_int_t)ns.denied_total));
    }
    serve_close_runtime_box(rt, box);
    return serve_json(r, 200, j);
}

int handle_net_stats(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    cocoon_net_stats s;
    cocoon_error err;
    int rc;
    if (cocoon_box_net_stats(box, &s, &err) < 0) {
        rc = serve_cocoon_error(r, &err);
    } else {
        json_t *j = json_pack("{s:b}", "present", s.present);
#define NS(f) json_object_set_new(j, #f, json_integer((json_int_t)s.f))
        NS(denied_total);
        NS(denied_tcp);
        NS(denied_udp);
        NS(denied_icmp);
        NS(denied_dns);
        NS(denied_tls);
        NS(tcp_connections);
        NS(udp_flows);
        NS(dns_queries);
        NS(dns_stripped);
        NS(frames_in);
        NS(frames_out);
        NS(bytes_in);
        NS(bytes_out);
        NS(dropped_malformed);
#undef NS
        rc = serve_json(r, 200, j);
    }
    serve_close_runtime_box(rt, box);
    return rc;
}
