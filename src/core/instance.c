/* SPDX-License-Identifier: MIT */
/*
 * core/instance.c - an instance's life: build it from a config, run the
 * control loop until told to stop, take it down leaving every process
 * running on its own.
 */
#include "core/instance.h"
#include "mech/rawsys.h"
#include "mech/uffd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct usm_instance *usm_inst;

/* So that top -H, perf and gdb tell the instance's threads apart; the
 * kernel keeps 15 characters, and a failure only costs the name. */
void usm_thread_name(pthread_t t, const char *base, int index)
{
	char name[16];

	if (index < 0)
		snprintf(name, sizeof(name), "%s", base);
	else
		snprintf(name, sizeof(name), "%s%d", base, index);
	(void)pthread_setname_np(t, name);
}

/* The process's own policy, or the instance default as switched by the
 * config's `threshold` lines.  p may be NULL.  Lock held. */
struct usm_policy *usm_instance_policy_of(struct usm_process *p)
{
	struct usm_instance *inst = usm_inst;
	struct usm_policy *pol = inst->default_policy;
	unsigned used;

	if (p && p->policy)
		return p->policy;
	if (!inst->cfg.nthresh)
		return pol;
	used = usm_budget_used_pct();
	for (size_t i = 0; i < inst->cfg.nthresh; i++)
		if (used >= inst->cfg.thresh[i].pct)
			pol = usm_registry_find_alloc(inst->cfg.thresh[i].policy);
	return pol;
}

static int check_kernel(char *err, size_t errlen)
{
	uint64_t have = 0, missing;
	int rc = usm_uffd_probe(&have);
	char names[256] = "";
	size_t off = 0;

	if (rc) {
		snprintf(err, errlen, "userfaultfd is not available: %s%s", strerror(-rc),
			 rc == -EPERM ? " (run as root, or allow /dev/userfaultfd)" : "");
		return -1;
	}
	missing = USM_UFFD_REQUIRED & ~have;
	for (uint64_t b = 1; missing && b; b <<= 1)
		if (missing & b)
			off += (size_t)snprintf(names + off, sizeof(names) - off, " %s",
						usm_uffd_feature_name(b));
	if (missing) {
		snprintf(err, errlen, "this kernel's userfaultfd lacks required features:%s "
			 "(Linux 4.11 or newer is needed)", names);
		return -1;
	}
	return 0;
}

static int init_policies(char *err, size_t errlen)
{
	for (size_t i = 0; i < usm_registry_count(); i++) {
		struct usm_policy *p = usm_registry_at(i);

		if (p->ops->usm_init && p->ops->usm_init() != USM_OK) {
			snprintf(err, errlen, "policy %s: usm_init failed", p->name);
			return -1;
		}
		p->initialised = 1;
	}
	return 0;
}

int usm_instance_create(struct usm_instance **out, const char *name,
			struct usm_config *cfg, char *err, size_t errlen)
{
	return usm_instance_create_host(out, name, cfg, NULL, err, errlen);
}

int usm_instance_create_host(struct usm_instance **out, const char *name,
			     struct usm_config *cfg, const struct usm_inline_host *host,
			     char *err, size_t errlen)
{
	struct usm_instance *inst;

	if (usm_inst) {
		snprintf(err, errlen, "an instance already runs in this process");
		return -1;
	}
	if (check_kernel(err, errlen))
		return -1;
	for (size_t i = 0; i < cfg->nplugins; i++)
		if (usm_plugin_load(cfg->plugins[i], err, errlen))
			return -1;
	if (usm_config_check_policies(cfg, err, errlen))
		return -1;
	inst = calloc(1, sizeof(*inst));
	if (!inst) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(inst->name, sizeof(inst->name), "%s", name);
	inst->cfg = *cfg;                 /* the instance owns the config now */
	memset(cfg, 0, sizeof(*cfg));
	inst->listen_fd = inst->ctl_epfd = inst->stop_fd = -1;
	pthread_mutex_init(&inst->lock, NULL);
	pthread_mutex_init(&inst->procs_lock, NULL);
	usm_list_init(&inst->procs);
	usm_list_init(&inst->forks);
	usm_list_init(&inst->pinned);
	inst->default_policy = usm_registry_find_alloc(inst->cfg.default_policy);
	inst->start_ns = usm_now_ns();
	usm_inst = inst;
	/* Zero source for every resolve: PROT_READ, so nothing can ever
	 * dirty it and hand one process's data to another. */
	inst->zero = raw_map(USM_MAX_BATCH * inst->cfg.page_size, PROT_READ);
	if (!inst->zero || usm_frames_init(inst)) {
		snprintf(err, errlen, "cannot map the frame table for %llu MiB",
			 (unsigned long long)inst->cfg.memory_mib);
		goto fail;
	}
	inst->host = host;
	if (host) {
		inst->cap = 0;          /* frames arrive by lease */
		inst->reserve = 0;      /* no agent lock to wait for */
	}
	if (init_policies(err, errlen) || usm_evict_start(inst, err, errlen) ||
	    (!host && usm_control_open(inst, err, errlen)))
		goto fail;
	*out = inst;
	return 0;
fail:
	usm_instance_destroy(inst);
	return -1;
}

int usm_instance_run(struct usm_instance *inst)
{
	int rc = usm_copiers_start(inst);

	if (!rc)
		rc = usm_workers_start(inst);
	if (rc) {
		usm_log(USM_LOG_ERROR, "cannot start workers: %s", strerror(-rc));
		return -1;
	}
	usm_log(USM_LOG_INFO, "instance %s: %llu MiB, %u worker(s) (%s), policy %s, socket %s",
		inst->name, (unsigned long long)inst->cfg.memory_mib, inst->nworkers,
		usm_wait_mode_name(inst->cfg.wait_mode), inst->default_policy->name,
		inst->sock_path);
	rc = usm_control_loop(inst);
	inst->stopping = true;
	usm_evict_stop(inst);
	usm_workers_stop(inst);
	usm_copiers_stop(inst);
	return rc;
}

/* Async-signal-safe: usmd calls it from its SIGTERM handler. */
void usm_instance_stop(struct usm_instance *inst)
{
	uint64_t one = 1;

	inst->stopping = true;
	if (inst->stop_fd >= 0 && write(inst->stop_fd, &one, sizeof(one)) < 0)
		return;
}

void usm_instance_destroy(struct usm_instance *inst)
{
	if (!inst)
		return;
	inst->stopping = true;
	usm_evict_stop(inst);
	usm_workers_stop(inst);
	usm_copiers_stop(inst);
	usm_evict_fini(inst);
	usm_control_close(inst);
	for (size_t i = 0; i < usm_registry_count(); i++) {
		struct usm_policy *p = usm_registry_at(i);
		if (p->initialised && p->ops->usm_exit)
			p->ops->usm_exit();
		p->initialised = 0;
	}
	usm_frames_fini(inst);
	if (inst->zero)
		raw_unmap(inst->zero, USM_MAX_BATCH * inst->cfg.page_size);
	free(inst->history);
	usm_config_free(&inst->cfg);
	pthread_mutex_destroy(&inst->lock);
	pthread_mutex_destroy(&inst->procs_lock);
	if (usm_inst == inst)
		usm_inst = NULL;
	free(inst);
}

const char *usm_config_get(const char *key)
{
	return usm_config_lookup(&usm_inst->cfg, key);
}

long long usm_config_get_int(const char *key, long long def, int *err)
{
	char what[96];

	snprintf(what, sizeof(what), "set %s", key);
	return usm_config_int_value(usm_config_get(key), what, def, err);
}
