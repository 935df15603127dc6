/* SPDX-License-Identifier: MIT */
#include "core/registry.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POLICIES 64

static struct usm_policy alloc_policies[MAX_POLICIES];
static size_t n_alloc;
static int default_alloc = -1;

static struct usm_swap_policy swap_policies[MAX_POLICIES];
static size_t n_swap;

int usm_register_alloc_policy(const struct usm_alloc_policy_ops *ops,
			      const char *name, bool is_default)
{
	if (!ops || !ops->usm_alloc || !name || !*name || strlen(name) >= 32) {
		usm_log(USM_LOG_ERROR, "policy registration refused: %s",
			!ops || !ops->usm_alloc ? "usm_alloc is required"
						: "name must be 1-31 characters");
		return USM_EINVAL;
	}
	if (usm_registry_find_alloc(name)) {
		usm_log(USM_LOG_ERROR, "policy '%s' is already registered", name);
		return USM_EINVAL;
	}
	if (n_alloc == MAX_POLICIES) {
		usm_log(USM_LOG_ERROR, "policy '%s': registry full", name);
		return USM_EINVAL;
	}
	struct usm_policy *p = &alloc_policies[n_alloc];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->ops = ops;
	if (is_default)
		default_alloc = (int)n_alloc;
	n_alloc++;
	return USM_OK;
}

int usm_register_swap_policy(const struct usm_swap_policy_ops *ops,
			     const char *name, bool is_default)
{
	if (!ops || !name || !*name || strlen(name) >= 32 || n_swap == MAX_POLICIES) {
		usm_log(USM_LOG_ERROR, "swap policy registration refused: %s",
			!ops ? "no ops" : n_swap == MAX_POLICIES ? "registry full"
				: "name must be 1-31 characters");
		return USM_EINVAL;
	}
	if (!ops->usm_evict_fallback || !ops->usm_page_mapped || !ops->usm_page_unmapped) {
		usm_log(USM_LOG_ERROR, "swap policy '%s' refused: usm_page_mapped, "
			"usm_page_unmapped and usm_evict_fallback are required", name);
		return USM_EINVAL;
	}
	if (usm_registry_find_swap(name)) {
		usm_log(USM_LOG_ERROR, "swap policy '%s' is already registered", name);
		return USM_EINVAL;
	}
	snprintf(swap_policies[n_swap].name, sizeof(swap_policies[n_swap].name), "%s", name);
	swap_policies[n_swap].ops = ops;
	n_swap++;
	(void)is_default;
	return USM_OK;
}

struct usm_swap_policy *usm_registry_find_swap(const char *name)
{
	for (size_t i = 0; i < n_swap; i++)
		if (!strcmp(swap_policies[i].name, name))
			return &swap_policies[i];
	return NULL;
}

void usm_registry_swap_names(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n_swap && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
					swap_policies[i].name);
}

struct usm_policy *usm_registry_find_alloc(const char *name)
{
	for (size_t i = 0; i < n_alloc; i++)
		if (!strcmp(alloc_policies[i].name, name))
			return &alloc_policies[i];
	return NULL;
}

struct usm_policy *usm_registry_default_alloc(void)
{
	if (default_alloc >= 0)
		return &alloc_policies[default_alloc];
	return n_alloc ? &alloc_policies[0] : NULL;
}

void usm_registry_names(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n_alloc && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
					alloc_policies[i].name);
}

size_t usm_registry_count(void)
{
	return n_alloc;
}

struct usm_policy *usm_registry_at(size_t i)
{
	return i < n_alloc ? &alloc_policies[i] : NULL;
}

int usm_plugin_load(const char *path, char *err, size_t errlen)
{
	size_t before = n_alloc + n_swap;
	/* RTLD_NOW: an unresolved symbol is an error now, not a crash on the
	 * fault path later.  Policies register from their constructors. */
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(err, errlen, "plugin %s: cannot load: %s", path, dlerror());
		return -1;
	}
	if (n_alloc + n_swap == before) {
		snprintf(err, errlen, "plugin %s: loaded, but it registered no policy "
			 "(call usm_register_alloc_policy from a constructor)", path);
		dlclose(h);
		return -1;
	}
	return 0;
}

/* A policy's own memory (usm/usm.h).  In libusm-inline.so the calls below
 * are linked to the framework's heap (core/heap.c, --wrap). */
void *usm_mem_alloc(size_t n)
{
	return malloc(n);
}

void *usm_mem_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

void *usm_mem_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

void usm_mem_free(void *p)
{
	free(p);
}
