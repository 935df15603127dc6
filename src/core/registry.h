/* SPDX-License-Identifier: MIT */
/*
 * core/registry.h - the policy registry.  Built-in policies and plugins
 * register from constructors, so the registry must work before main().
 */
#ifndef USM_CORE_REGISTRY_H
#define USM_CORE_REGISTRY_H

#include <stddef.h>
#include <usm/usm.h>

struct usm_policy {
	char name[32];
	const struct usm_alloc_policy_ops *ops;
	int initialised;
};

struct usm_swap_policy {
	char name[32];
	const struct usm_swap_policy_ops *ops;
	int initialised;
};

struct usm_policy *usm_registry_find_alloc(const char *name);
/* The policy registered with is_default (or the first one). */
struct usm_policy *usm_registry_default_alloc(void);
/* Comma-separated names of the allocation policies. */
void usm_registry_names(char *buf, size_t len);
size_t usm_registry_count(void);

struct usm_swap_policy *usm_registry_find_swap(const char *name);
/* Comma-separated names of the swap (eviction) policies. */
void usm_registry_swap_names(char *buf, size_t len);
struct usm_policy *usm_registry_at(size_t i);

/* Load a plugin; on failure err says which file and why. */
int usm_plugin_load(const char *path, char *err, size_t errlen);

#endif /* USM_CORE_REGISTRY_H */
