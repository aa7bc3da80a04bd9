/* Unit tests of the box contract (src/boxcfg, and libcocoon's use of it in
 * src/lib/config.c): the names of backends, accelerators and network modes both ways,
 * config.json written and read back to the same struct (and the same text), the
 * reader's refusals with the field they name, the bounds applied alike to options and
 * to config.json, and the file checks cocoon-vmm makes before a start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boxcfg/config.h"
#include "lib/internal.h"
#include "util/util.h"
#include "support/tmpdir.h"

static char dir[PATH_MAX];
static char why[PATH_MAX * 2];

static int setup(void **state) { return test_tmpdir(dir, sizeof(dir), "cocoon-test-boxcfg"); }

static int teardown(void **state) { return util_rm_rf(dir); }

static void test_names_both_ways(void **unused)
{
    enum box_backend b;
    enum box_accel a;
    enum net_mode m;
    for (int i = BOX_BACKEND_AUTO; i <= BOX_BACKEND_QEMU; i++) {
        assert_int_equal(box_backend_parse(box_backend_name((enum box_backend)i), &b), 0);
        assert_int_equal(b, i);
        assert_non_null(strstr(box_backend_choices(), box_backend_name((enum box_backend)i)));
    }
    for (int i = BOX_ACCEL_AUTO; i <= BOX_ACCEL_TCG; i++) {
        assert_int_equal(box_accel_parse(box_accel_name((enum box_accel)i), &a), 0);
        assert_int_equal(a, i);
        assert_non_null(strstr(box_accel_choices(), box_accel_name((enum box_accel)i)));
    }
    for (int i = NET_MODE_NONE; i <= NET_MODE_OPEN; i++) {
        assert_int_equal(box_net_mode_parse(box_net_mode_name((enum net_mode)i), &m), 0);
        assert_int_equal(m, i);
        assert_non_null(strstr(box_net_mode_choices(), box_net_mode_name((enum net_mode)i)));
    }
    assert_string_equal(box_backend_name(BOX_BACKEND_KVM), "kvm");
    assert_string_equal(box_accel_name(BOX_ACCEL_TCG), "tcg");
    assert_string_equal(box_net_mode_name(NET_MODE_PUBLIC), "public");
    assert_string_equal(box_backend_name((enum box_backend)7), "?");
    /* Only the exact spellings: what the monitor accepts is what the CLI accepts. */
    static const char *const bad[] = {"", "KVM", "kvm ", "firecracker", "tcg,thread=multi", "nonE"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        b = BOX_BACKEND_QEMU;
        assert_int_equal(box_backend_parse(bad[i], &b), -1);
        assert_int_equal(b, BOX_BACKEND_QEMU); /* untouched */
        assert_int_equal(box_accel_parse(bad[i], &a), -1);
        assert_int_equal(box_net_mode_parse(bad[i], &m), -1);
    }
    assert_int_equal(box_backend_parse(NULL, &b), -1);
    assert_true(box_name_valid("dev-1.a_b") && !box_name_valid("-x") && !box_name_valid(".x") && !box_name_valid("") &&
                !box_name_valid("a/b"));
    char long_name[BOX_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[BOX_NAME_MAX + 1] = 0;
    assert_false(box_name_valid(long_name));
    long_name[BOX_NAME_MAX] = 0;
    assert_true(box_name_valid(long_name));
}

/* A config with every field away from its default. */
static void full_config(struct box_config *c)
{
    box_config_defaults(c);
    snprintf(c->id, sizeof(c->id), "3fa2c9e01b7d");
    snprintf(c->name, sizeof(c->name), "dev");
    c->created = 1764190000;
    snprintf(c->image, sizeof(c->image), "docker.io/library/python:3.12");
    snprintf(c->image_id, sizeof(c->image_id), "sha256:%064d", 7);
    snprintf(c->kernel, sizeof(c->kernel), "/abs/vmlinux");
    snprintf(c->initrd, sizeof(c->initrd), "/abs/initramfs.cpio");
    snprintf(c->disk, sizeof(c->disk), "/abs/box/disk.qcow2");
    c->disk_size = 10ull << 30;
    c->cpus = 2;
    c->memory_mib = 1024;
    c->boot_timeout_ms = 5000;
    c->accel = BOX_ACCEL_TCG;
    c->backend = BOX_BACKEND_KVM;
    c->ephemeral = 1;
    c->net.mode = NET_MODE_PUBLIC;
    assert_int_equal(box_config_add_rule(c, "allow *.pypi.org", why, sizeof(why)), 0);
    assert_int_equal(box_config_add_rule(c, "deny 10.1.2.0/24:5432/tcp", why, sizeof(why)), 0);
    assert_int_equal(box_config_add_port(c, "127.0.0.1:5353:53/udp", why, sizeof(why)), 0);
    c->net.upstreams[0].ip = 0x7f000001;
    c->net.upstreams[0].port = 5353;
    c->net.nupstreams = 1;
    c->net.refuse_nxdomain = 1;
}

static void test_write_then_read_is_identity(void **unused)
{
    static struct box_config c, back;
    full_config(&c);
    char *text = box_config_json(&c);
    assert_non_null(text);
    assert_int_equal(box_config_parse(text, strlen(text), &back, why, sizeof(why)), 0);
    assert_string_equal(back.id, c.id);
    assert_string_equal(back.name, "dev");
    assert_true(back.created == c.created && back.disk_size == c.disk_size);
    assert_string_equal(back.image, c.image);
    assert_string_equal(back.image_id, c.image_id);
    assert_string_equal(back.kernel, c.kernel);
    assert_string_equal(back.initrd, c.initrd);
    assert_string_equal(back.disk, c.disk);
    assert_string_equal(back.disk_format, "qcow2");
    assert_true(back.cpus == 2 && back.memory_mib == 1024 && back.boot_timeout_ms == 5000 && back.ephemeral);
    assert_int_equal(back.accel, BOX_ACCEL_TCG);
    assert_int_equal(back.backend, BOX_BACKEND_KVM);
    assert_string_equal(back.hostname, "cocoon-3fa2c9");
    assert_int_equal(back.net.mode, NET_MODE_PUBLIC);
    assert_int_equal(back.net.nrules, 2);
    assert_string_equal(back.net.rules[0].text, "allow *.pypi.org");
    assert_true(back.net.rules[1].kind == NET_RULE_CIDR && back.net.rules[1].port_lo == 5432 &&
                !back.net.rules[1].allow);
    assert_int_equal(back.net.nports, 1);
    assert_true(back.net.ports[0].proto == NET_PROTO_UDP && back.net.ports[0].host_port == 5353 &&
                back.net.ports[0].guest_port == 53);
    assert_true(back.net.nupstreams == 1 && back.net.upstreams[0].ip == 0x7f000001 &&
                back.net.upstreams[0].port == 5353 && back.net.refuse_nxdomain);
    char *again = box_config_json(&back);
    assert_non_null(again);
    assert_string_equal(again, text); /* the text is a fixed point too */
    free(text);
    free(again);
}

/* The keys, their order and their spelling are the schema of docs/internals.md: what an
 * older cocoon-vmm reads. */
static void test_written_schema(void **unused)
{
    static struct box_config c;
    box_config_defaults(&c);
    snprintf(c.id, sizeof(c.id), "3fa2c9e01b7d");
    c.created = 1764190000;
    snprintf(c.image, sizeof(c.image), "default");
    snprintf(c.image_id, sizeof(c.image_id), "local:default");
    snprintf(c.kernel, sizeof(c.kernel), "/abs/vmlinux");
    snprintf(c.initrd, sizeof(c.initrd), "/abs/initramfs.cpio");
    snprintf(c.disk, sizeof(c.disk), "/abs/box/disk.qcow2");
    c.backend = BOX_BACKEND_QEMU;
    c.ephemeral = 1;
    char *text = box_config_json(&c);
    assert_non_null(text);
    assert_string_equal(text, "{\n"
                              "  \"id\": \"3fa2c9e01b7d\",\n"
                              "  \"name\": \"\",\n"
                              "  \"created\": 1764190000,\n"
                              "  \"image\": \"default\",\n"
                              "  \"kernel\": \"/abs/vmlinux\",\n"
                              "  \"initrd\": \"/abs/initramfs.cpio\",\n"
                              "  \"disk\": \"/abs/box/disk.qcow2\",\n"
                              "  \"disk_format\": \"qcow2\",\n"
                              "  \"cpus\": 1,\n"
                              "  \"memory_mib\": 512,\n"
                              "  \"accel\": \"auto\",\n"
                              "  \"backend\": \"qemu\",\n"
                              "  \"ephemeral\": true,\n"
                              "  \"boot_timeout_ms\": 60000,\n"
                              "  \"hostname\": \"cocoon-3fa2c9\",\n"
                              "  \"image_id\": \"local:default\"\n"
                              "}\n");
    free(text);
}

static void test_defaults_of_a_minimal_config(void **unused)
{
    static struct box_config c;
    const char *text = "{\"id\": \"bench\", \"kernel\": \"/k\", \"disk\": \"/d\"}";
    assert_int_equal(box_config_parse(text, strlen(text), &c, why, sizeof(why)), 0);
    assert_true(c.cpus == BOX_CPUS_DEFAULT && c.memory_mib == BOX_MEMORY_MIB_DEFAULT &&
                c.boot_timeout_ms == BOX_BOOT_TIMEOUT_MS_DEFAULT);
    assert_int_equal(c.accel, BOX_ACCEL_AUTO);
    assert_int_equal(c.backend, BOX_BACKEND_QEMU); /* boxes older than the kvm backend */
    assert_int_equal(c.net.mode, NET_MODE_NONE);
    assert_string_equal(c.disk_format, "qcow2");
    assert_string_equal(c.hostname, "cocoon-bench");
    assert_string_equal(c.initrd, "");
    assert_false(c.ephemeral);
}

struct bad {
    const char *json, *needle;
};

static const struct bad BAD[] = {
    {"[]", "not a JSON object"},
    {"{\"id\": \"x\"", "not valid JSON"},
    {"{\"id\": \"a\", \"id\": \"b\", \"kernel\": \"/k\", \"disk\": \"/d\"}", "duplicate"},
    {"{\"kernel\": \"/k\", \"disk\": \"/d\"}", "\"id\" is missing"},
    {"{\"id\": \"\", \"kernel\": \"/k\", \"disk\": \"/d\"}", "\"id\" is empty"},
    {"{\"id\": \"a/b\", \"kernel\": \"/k\", \"disk\": \"/d\"}", "may only hold"},
    {"{\"id\": \"a\", \"disk\": \"/d\"}", "\"kernel\" is missing"},
    {"{\"id\": \"a\", \"kernel\": 7, \"disk\": \"/d\"}", "\"kernel\" must be a string"},
    {"{\"id\": \"a\", \"kernel\": \"/k\\u0000x\", \"disk\": \"/d\"}", "NUL"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"accel\": \"hvf\"}",
     "\"accel\" is \"hvf\", expected auto, kvm or tcg"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"backend\": \"firecracker\"}",
     "\"backend\" is \"firecracker\", expected auto, kvm or qemu"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"disk_format\": \"vmdk\"}", "\"disk_format\""},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"cpus\": 65}",
     "\"cpus\" is 65, it must be between 1 and 64"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"cpus\": 0}", "\"cpus\" is 0"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"cpus\": 1.5}", "\"cpus\" must be an integer"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"memory_mib\": 63}", "\"memory_mib\" is 63"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"memory_mib\": 1048577}", "\"memory_mib\""},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"boot_timeout_ms\": 99}", "\"boot_timeout_ms\" is 99"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"created\": -1}", "\"created\" is -1"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"disk_size\": 70368744177665}", "\"disk_size\""},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"ephemeral\": 1}", "\"ephemeral\" must be true or false"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"hostname\": \"-x\"}", "not a valid host name"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": []}", "\"net\" must be an object"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"closed\"}}",
     "\"net.mode\" must be one of none, public or open"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"public\", \"rules\": [7]}}",
     "\"net.rules\" entries are strings"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"public\", \"rules\": [\"permit "
     "x\"]}}",
     "must start with \"allow \" or \"deny \""},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"public\", \"rules\": [\"allow "
     "1.2.3.4:0\"]}}",
     "bad port"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"public\", \"ports\": \"80:80\"}}",
     "\"net.ports\" must be an array"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"public\", \"ports\": [\"80\"]}}",
     "expected [HOST_IP:]HOST_PORT:GUEST_PORT"},
    {"{\"id\": \"a\", \"kernel\": \"/k\", \"disk\": \"/d\", \"net\": {\"mode\": \"public\", \"dns_upstream\": "
     "[\"x\"]}}",
     "\"net.dns_upstream\""},
};

static void test_reader_refusals_name_the_field(void **unused)
{
    static struct box_config c;
    for (size_t i = 0; i < sizeof(BAD) / sizeof(*BAD); i++) {
        why[0] = 0;
        if (box_config_parse(BAD[i].json, strlen(BAD[i].json), &c, why, sizeof(why)) == 0)
            fail_msg("accepted %s", BAD[i].json);
        if (!strstr(why, BAD[i].needle))
            fail_msg("%s: expected \"%s\" in \"%s\"", BAD[i].json, BAD[i].needle, why);
    }
}

/* More rules or ports than the bound are refused, wherever they come from. */
static void test_net_bounds(void **unused)
{
    static struct box_config c;
    box_config_defaults(&c);
    for (int i = 0; i < BOX_NET_RULES_MAX; i++)
        assert_int_equal(box_config_add_rule(&c, "allow example.org", why, sizeof(why)), 0);
    assert_int_equal(box_config_add_rule(&c, "allow example.org", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "at most 64"));
    for (int i = 0; i < BOX_NET_PORTS_MAX; i++)
        assert_int_equal(box_config_add_port(&c, "8080:80", why, sizeof(why)), 0);
    assert_int_equal(box_config_add_port(&c, "8080:80", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "at most 32"));
    char long_port[NET_PORT_TEXT + 8];
    memset(long_port, '1', sizeof(long_port) - 1);
    long_port[sizeof(long_port) - 1] = 0;
    box_config_defaults(&c);
    assert_int_equal(box_config_add_port(&c, long_port, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "too long"));
}

static void write_file(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_read_and_load(void **unused)
{
    static struct box_config c;
    errno = 0;
    assert_int_equal(box_config_read(dir, &c, why, sizeof(why)), -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(why, "config.json"));

    /* Not one of ours: refused before it is parsed. */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fseek(f, BOX_CONFIG_FILE_MAX, SEEK_SET), 0);
    fputc(' ', f);
    fclose(f);
    assert_int_equal(box_config_read(dir, &c, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "larger than 1 MiB"));

    /* Read (what libcocoon does) succeeds without the files; load (cocoon-vmm) checks them. */
    char text[PATH_MAX * 3];
    snprintf(text, sizeof(text),
             "{\"id\": \"a\", \"kernel\": \"%s/vmlinux\", \"disk\": \"%s/disk.raw\", \"disk_format\": \"raw\"}", dir,
             dir);
    write_file("config.json", text);
    assert_int_equal(box_config_read(dir, &c, why, sizeof(why)), 0);
    assert_int_equal(box_config_load(dir, &c, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "bad box config"));
    assert_non_null(strstr(why, "kernel"));
    write_file("vmlinux", "k");
    assert_int_equal(box_config_load(dir, &c, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "disk"));
    write_file("disk.raw", "d");
    assert_int_equal(box_config_load(dir, &c, why, sizeof(why)), 0);

    /* The writer's file reads back. */
    static struct box_config full;
    full_config(&full);
    assert_int_equal(box_config_write(dir, &full, why, sizeof(why)), 0);
    assert_int_equal(box_config_read(dir, &c, why, sizeof(why)), 0);
    assert_int_equal(c.net.nrules, 2);
    assert_string_equal(c.image_id, full.image_id);
}

/* libcocoon's options go through the same names and bounds as config.json. */
static void test_options_use_the_contract(void **unused)
{
    static struct box_config c;
    cocoon_error err;
    cocoon_box_options o;
    cocoon_box_options_init(&o);
    assert_int_equal(lib_config_from_options(&o, &c, &err), 0);
    assert_true(c.cpus == BOX_CPUS_DEFAULT && c.memory_mib == BOX_MEMORY_MIB_DEFAULT &&
                c.boot_timeout_ms == BOX_BOOT_TIMEOUT_MS_DEFAULT);
    assert_true(c.accel == BOX_ACCEL_AUTO && c.backend == BOX_BACKEND_AUTO && c.net.mode == NET_MODE_PUBLIC);

    static const char *const rules[] = {"allow *.pypi.org", "deny 1.2.3.4", NULL};
    static const char *const ports[] = {"8080:80", NULL};
    o.name = "dev";
    o.cpus = 64;
    o.memory_mib = 64;
    o.boot_timeout_ms = 100;
    o.accel = "tcg";
    o.vmm = "qemu";
    o.net = "open";
    o.net_rules = rules;
    o.net_ports = ports;
    o.disk_size = BOX_DISK_BYTES_MAX;
    assert_int_equal(lib_config_from_options(&o, &c, &err), 0);
    assert_true(c.cpus == 64 && c.memory_mib == 64 && c.boot_timeout_ms == 100 && c.disk_size == BOX_DISK_BYTES_MAX);
    assert_true(c.accel == BOX_ACCEL_TCG && c.backend == BOX_BACKEND_QEMU && c.net.mode == NET_MODE_OPEN);
    assert_true(c.net.nrules == 2 && c.net.nports == 1);
    assert_string_equal(c.name, "dev");

    cocoon_box_options b;
#define REFUSED(field, value, needle)                                                                                  \
    do {                                                                                                               \
        cocoon_box_options_init(&b);                                                                                   \
        b.field = value;                                                                                               \
        assert_int_equal(lib_config_from_options(&b, &c, &err), -1);                                                   \
        assert_int_equal(err.code, COCOON_E_INVALID);                                                                  \
        if (!strstr(err.message, needle))                                                                              \
            fail_msg("%s: expected \"%s\" in \"%s\"", #field, needle, err.message);                                    \
    } while (0)
    REFUSED(cpus, BOX_CPUS_MAX + 1, "between 1 and 64");
    REFUSED(memory_mib, BOX_MEMORY_MIB_MIN - 1, "between 64 MiB and 1 TiB");
    REFUSED(memory_mib, BOX_MEMORY_MIB_MAX + 1, "between 64 MiB and 1 TiB");
    REFUSED(boot_timeout_ms, BOX_BOOT_TIMEOUT_MS_MIN - 1, "boot timeout");
    REFUSED(boot_timeout_ms, BOX_BOOT_TIMEOUT_MS_MAX + 1, "boot timeout");
    REFUSED(disk_size, BOX_DISK_BYTES_MAX + 1, "64 TiB");
    REFUSED(accel, "hvf", "use auto, kvm or tcg");
    REFUSED(vmm, "firecracker", "use auto, kvm or qemu");
    REFUSED(net, "closed", "use none, public or open");
    REFUSED(name, "-x", "invalid box name");
    static const char *const no_verb[] = {"api.example.com", NULL};
    REFUSED(net_rules, no_verb, "must start with \"allow \" or \"deny \"");
    REFUSED(net_ports, no_verb, "published port");
#undef REFUSED
    cocoon_box_options_init(&b);
    b.net = "none";
    b.net_rules = rules;
    assert_int_equal(lib_config_from_options(&b, &c, &err), -1);
    assert_non_null(strstr(err.message, "need --net public or --net open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_both_ways),
        cmocka_unit_test(test_write_then_read_is_identity),
        cmocka_unit_test(test_written_schema),
        cmocka_unit_test(test_defaults_of_a_minimal_config),
        cmocka_unit_test(test_reader_refusals_name_the_field),
        cmocka_unit_test(test_net_bounds),
        cmocka_unit_test_setup_teardown(test_read_and_load, setup, teardown),
        cmocka_unit_test(test_options_use_the_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
