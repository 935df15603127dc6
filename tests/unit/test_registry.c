/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/registry.c: registering allocation and swap
 * policies, the default policy, and loading plugins with dlopen.
 *
 * The registry is process-global and append-only, so the tests run in
 * order and each one knows what the earlier ones registered.  Plugins are
 * compiled at test time with $CC (default cc) into a temporary directory;
 * without a compiler those tests are skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/registry.h"

static int alloc_a(struct usm_event *ev) { (void)ev; return 101; }
static int alloc_b(struct usm_event *ev) { (void)ev; return 102; }

static const struct usm_alloc_policy_ops ops_a = { .usm_alloc = alloc_a };
static const struct usm_alloc_policy_ops ops_b = { .usm_alloc = alloc_b };
static const struct usm_alloc_policy_ops ops_no_alloc = { .usm_init = NULL };

static char err[512];

/* ---- built-in policies ------------------------------------------------ */

static void test_builtin(void **state)
{
	size_t n = usm_registry_count();
	char names[1024], want[1024] = "";

	/* first_fit and batch register from libusm's constructors */
	assert_true(n >= 2);
	assert_non_null(usm_registry_find_alloc("first_fit"));
	assert_non_null(usm_registry_find_alloc("batch"));
	assert_string_equal(usm_registry_find_alloc("first_fit")->name, "first_fit");
	assert_non_null(usm_registry_find_alloc("first_fit")->ops->usm_alloc);
	assert_null(usm_registry_find_alloc("First_fit"));
	assert_null(usm_registry_find_alloc("first"));
	assert_null(usm_registry_find_alloc(""));
	/* first_fit is the one registered as default */
	assert_ptr_equal(usm_registry_default_alloc(), usm_registry_find_alloc("first_fit"));

	for (size_t i = 0; i < n; i++) {
		struct usm_policy *p = usm_registry_at(i);
		assert_non_null(p);
		assert_ptr_equal(usm_registry_find_alloc(p->name), p);
		strcat(want, i ? ", " : "");
		strcat(want, p->name);
	}
	assert_null(usm_registry_at(n));
	assert_null(usm_registry_at((size_t)-1));
	usm_registry_names(names, sizeof(names));
	assert_string_equal(names, want);
	/* a short buffer truncates safely */
	usm_registry_names(names, 4);
	assert_int_equal(strlen(names), 3);
	assert_true(!strncmp(names, want, 3));
}

/* ---- registration errors ---------------------------------------------- */

static void test_register_errors(void **state)
{
	size_t n = usm_registry_count();
	char name32[33];

	memset(name32, 'n', 32);
	name32[32] = '\0';
	assert_int_equal(usm_register_alloc_policy(NULL, "x", false), USM_EINVAL);
	assert_int_equal(usm_register_alloc_policy(&ops_no_alloc, "x", false), USM_EINVAL);
	assert_int_equal(usm_register_alloc_policy(&ops_a, NULL, false), USM_EINVAL);
	assert_int_equal(usm_register_alloc_policy(&ops_a, "", false), USM_EINVAL);
	assert_int_equal(usm_register_alloc_policy(&ops_a, name32, false), USM_EINVAL);
	assert_int_equal(usm_register_alloc_policy(&ops_a, "first_fit", false), USM_EINVAL);
	assert_int_equal(usm_register_alloc_policy(&ops_a, "batch", true), USM_EINVAL);
	assert_int_equal(usm_registry_count(), n);
	assert_null(usm_registry_find_alloc("x"));
	assert_null(usm_registry_find_alloc(name32));
	/* a refused is_default registration does not change the default */
	assert_ptr_equal(usm_registry_default_alloc(), usm_registry_find_alloc("first_fit"));
	assert_true(usm_registry_find_alloc("batch")->ops->usm_alloc != alloc_a);
}

static void test_register_ok(void **state)
{
	size_t n = usm_registry_count();
	char name31[32];
	struct usm_policy *p;

	memset(name31, 'm', 31);
	name31[31] = '\0';
	assert_int_equal(usm_register_alloc_policy(&ops_a, name31, false), USM_OK);
	assert_int_equal(usm_registry_count(), n + 1);
	p = usm_registry_find_alloc(name31);
	assert_non_null(p);
	assert_ptr_equal(p, usm_registry_at(n));
	assert_ptr_equal(p->ops, &ops_a);
	assert_int_equal(p->ops->usm_alloc(NULL), 101);
	assert_int_equal(p->initialised, 0);
	/* not default: first_fit still is */
	assert_ptr_equal(usm_registry_default_alloc(), usm_registry_find_alloc("first_fit"));
	/* the same name again is refused, even with other ops */
	assert_int_equal(usm_register_alloc_policy(&ops_b, name31, false), USM_EINVAL);
	/* the same ops under another name are fine */
	assert_int_equal(usm_register_alloc_policy(&ops_a, "unit_a2", false), USM_OK);

	/* a new default replaces the old one */
	assert_int_equal(usm_register_alloc_policy(&ops_b, "unit_b", true), USM_OK);
	assert_ptr_equal(usm_registry_default_alloc(), usm_registry_find_alloc("unit_b"));
	assert_int_equal(usm_registry_default_alloc()->ops->usm_alloc(NULL), 102);
	assert_int_equal(usm_registry_count(), n + 3);

	char names[2048];
	usm_registry_names(names, sizeof(names));
	assert_non_null(strstr(names, ", unit_a2, unit_b"));
}

static unsigned swap_in(struct usm_event *ev) { (void)ev; return 1; }
static const struct usm_swap_policy_ops swap_ops = { .usm_swap = swap_in };

static void test_register_swap(void **state)
{
	char name32[33];

	memset(name32, 's', 32);
	name32[32] = '\0';
	assert_int_equal(usm_register_swap_policy(NULL, "s", false), USM_EINVAL);
	assert_int_equal(usm_register_swap_policy(&swap_ops, NULL, false), USM_EINVAL);
	assert_int_equal(usm_register_swap_policy(&swap_ops, "", false), USM_EINVAL);
	assert_int_equal(usm_register_swap_policy(&swap_ops, name32, false), USM_EINVAL);
	assert_int_equal(usm_register_swap_policy(&swap_ops, "unit_swap", true), USM_OK);
	/* swap policies are not allocation policies */
	assert_null(usm_registry_find_alloc("unit_swap"));
	assert_non_null(usm_registry_find_swap("unit_swap"));
	assert_ptr_equal(usm_registry_find_swap("unit_swap")->ops, &swap_ops);
	assert_int_equal(usm_register_swap_policy(&swap_ops, "unit_swap", false), USM_EINVAL);
}

/* ---- plugins ------------------------------------------------------------ */

static char tmpdir[] = "/tmp/usm-unit-plugins-XXXXXX";
static bool have_cc;

/* Build src into <tmpdir>/<name>.so; false if no compiler is usable. */
static bool build_so(const char *name, const char *src)
{
	char c_path[256], so_path[256], cmd[1024];
	const char *cc = getenv("CC");
	FILE *f;

	snprintf(c_path, sizeof(c_path), "%s/%s.c", tmpdir, name);
	snprintf(so_path, sizeof(so_path), "%s/%s.so", tmpdir, name);
	f = fopen(c_path, "w");
	assert_non_null(f);
	fputs(src, f);
	fclose(f);
	/* The plugin resolves usm_* against the libusm already loaded here. */
	snprintf(cmd, sizeof(cmd), "env -u LD_PRELOAD %s -shared -fPIC -o %s %s 2>%s/%s.log",
		 cc && *cc ? cc : "cc", so_path, c_path, tmpdir, name);
	return system(cmd) == 0 && access(so_path, R_OK) == 0;
}

static const char src_empty[] =
	"int usm_unit_plugin_data = 42;\n";

/* No USM headers needed: the struct layout is declared here. */
#define OPS_DECL \
	"#include <stdbool.h>\n" \
	"struct usm_event;\n" \
	"struct usm_alloc_policy_ops { void *init, *exit; int (*alloc)(struct usm_event *);\n" \
	"                              void *rest[6]; };\n" \
	"int usm_register_alloc_policy(const struct usm_alloc_policy_ops *, const char *, bool);\n" \
	"static int a(struct usm_event *e) { (void)e; return 4242; }\n" \
	"static const struct usm_alloc_policy_ops ops = { .alloc = a };\n"

static const char src_good[] = OPS_DECL
	"__attribute__((constructor)) static void reg(void)\n"
	"{ usm_register_alloc_policy(&ops, \"unit_plugin\", false); }\n";

static const char src_dup[] = OPS_DECL
	"__attribute__((constructor)) static void reg(void)\n"
	"{ usm_register_alloc_policy(&ops, \"first_fit\", false); }\n";

static const char src_undef[] = OPS_DECL
	"void usm_unit_no_such_function(void);\n"
	"__attribute__((constructor)) static void reg(void)\n"
	"{ usm_unit_no_such_function(); usm_register_alloc_policy(&ops, \"unit_undef\", false); }\n";

static int plugins_setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	have_cc = build_so("empty", src_empty) && build_so("good", src_good) &&
		  build_so("dup", src_dup) && build_so("undef", src_undef);
	return 0;
}

static int plugins_teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void so_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.so", tmpdir, name);
}

static void test_plugin_missing(void **state)
{
	size_t n = usm_registry_count();

	assert_int_equal(usm_plugin_load("/nonexistent/usm-unit.so", err, sizeof(err)), -1);
	assert_true(!strncmp(err, "plugin /nonexistent/usm-unit.so: cannot load: ",
			     strlen("plugin /nonexistent/usm-unit.so: cannot load: ")));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(usm_registry_count(), n);
}

static void test_plugin_not_elf(void **state)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/text.so", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not a shared object\n", f);
	fclose(f);
	assert_int_equal(usm_plugin_load(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": cannot load: "));
	assert_true(!strncmp(err, "plugin ", 7));
	assert_non_null(strstr(err, path));
}

static void test_plugin_registers_nothing(void **state)
{
	char path[256], want[512];
	size_t n = usm_registry_count();

	if (!have_cc)
		skip();
	so_path(path, sizeof(path), "empty");
	assert_int_equal(usm_plugin_load(path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "plugin %s: loaded, but it registered no policy "
		 "(call usm_register_alloc_policy from a constructor)", path);
	assert_string_equal(err, want);
	assert_int_equal(usm_registry_count(), n);

	/* a plugin whose only policy is refused (duplicate name) is the same */
	so_path(path, sizeof(path), "dup");
	assert_int_equal(usm_plugin_load(path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "plugin %s: loaded, but it registered no policy "
		 "(call usm_register_alloc_policy from a constructor)", path);
	assert_string_equal(err, want);
	assert_int_equal(usm_registry_count(), n);
	assert_ptr_not_equal(usm_registry_find_alloc("first_fit")->ops->usm_alloc, NULL);
}

static void test_plugin_undefined_symbol(void **state)
{
	char path[256];
	size_t n = usm_registry_count();

	if (!have_cc)
		skip();
	so_path(path, sizeof(path), "undef");
	/* RTLD_NOW: refused at load time, its constructor never runs */
	assert_int_equal(usm_plugin_load(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": cannot load: "));
	assert_non_null(strstr(err, "usm_unit_no_such_function"));
	assert_int_equal(usm_registry_count(), n);
	assert_null(usm_registry_find_alloc("unit_undef"));
}

static void test_plugin_good(void **state)
{
	char path[256];
	size_t n = usm_registry_count();
	struct usm_policy *p;

	if (!have_cc)
		skip();
	so_path(path, sizeof(path), "good");
	assert_int_equal(usm_plugin_load(path, err, sizeof(err)), 0);
	assert_int_equal(usm_registry_count(), n + 1);
	p = usm_registry_find_alloc("unit_plugin");
	assert_non_null(p);
	assert_int_equal(p->ops->usm_alloc(NULL), 4242);      /* the plugin's code */
	/* Loading the same file again registers nothing new: refused. */
	assert_int_equal(usm_plugin_load(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "registered no policy"));
	/* ... and the first load stays usable */
	assert_int_equal(usm_registry_find_alloc("unit_plugin")->ops->usm_alloc(NULL), 4242);
}

/* Last: fill the registry to its limit. */
static void test_registry_full(void **state)
{
	char name[32], names[256];
	int added = 0;

	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "fill_%d", i);
		if (usm_register_alloc_policy(&ops_a, name, false) != USM_OK)
			break;
		added++;
	}
	assert_true(added > 0);
	assert_int_equal(usm_registry_count(), 64);
	assert_null(usm_registry_at(64));
	assert_non_null(usm_registry_at(63));
	snprintf(name, sizeof(name), "fill_%d", added);
	assert_null(usm_registry_find_alloc(name));
	/* every name still resolves; the names list truncates safely */
	for (size_t i = 0; i < 64; i++)
		assert_ptr_equal(usm_registry_find_alloc(usm_registry_at(i)->name),
				 usm_registry_at(i));
	usm_registry_names(names, sizeof(names));
	assert_int_equal(strlen(names), sizeof(names) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_register_errors),
		cmocka_unit_test(test_register_ok),
		cmocka_unit_test(test_register_swap),
		cmocka_unit_test(test_plugin_missing),
		cmocka_unit_test(test_plugin_not_elf),
		cmocka_unit_test(test_plugin_registers_nothing),
		cmocka_unit_test(test_plugin_undefined_symbol),
		cmocka_unit_test(test_plugin_good),
		cmocka_unit_test(test_registry_full),
	};

	return cmocka_run_group_tests_name("registry", tests, plugins_setup, plugins_teardown);
}
