/* SPDX-License-Identifier: MIT */
/*
 * usm/list.h - intrusive doubly linked lists, as in the original USM (and the
 * kernel): the link lives inside the object, so putting a frame on a policy's
 * list never allocates.
 */
#ifndef USM_LIST_H
#define USM_LIST_H

#include <stddef.h>
#include <stdbool.h>

struct usm_list_head {
	struct usm_list_head *next, *prev;
};

#define USM_LIST_HEAD_INIT(name) { &(name), &(name) }
#define USM_LIST_HEAD(name) struct usm_list_head name = USM_LIST_HEAD_INIT(name)

static inline void usm_list_init(struct usm_list_head *h)
{
	h->next = h;
	h->prev = h;
}

static inline bool usm_list_empty(const struct usm_list_head *h)
{
	return h->next == h;
}

/* An initialised node that is on no list points at itself. */
static inline bool usm_list_linked(const struct usm_list_head *n)
{
	return n->next != n && n->next != NULL;
}

static inline void usm_list__insert(struct usm_list_head *n,
				    struct usm_list_head *prev,
				    struct usm_list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

/* Add n right after h (stack order). */
static inline void usm_list_add(struct usm_list_head *n, struct usm_list_head *h)
{
	usm_list__insert(n, h, h->next);
}

/* Add n right before h, i.e. at the tail (queue order). */
static inline void usm_list_add_tail(struct usm_list_head *n, struct usm_list_head *h)
{
	usm_list__insert(n, h->prev, h);
}

/* Unlink n and leave it self-linked, so usm_list_del() twice is harmless. */
static inline void usm_list_del(struct usm_list_head *n)
{
	n->next->prev = n->prev;
	n->prev->next = n->next;
	usm_list_init(n);
}

static inline void usm_list_move_tail(struct usm_list_head *n, struct usm_list_head *h)
{
	usm_list_del(n);
	usm_list_add_tail(n, h);
}

#define usm_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define usm_list_entry(ptr, type, member) usm_container_of(ptr, type, member)

#define usm_list_first_entry(head, type, member) \
	usm_list_entry((head)->next, type, member)

#define usm_list_for_each(pos, head) \
	for (pos = (head)->next; pos != (head); pos = pos->next)

/* Safe against removal of pos. */
#define usm_list_for_each_safe(pos, tmp, head) \
	for (pos = (head)->next, tmp = pos->next; pos != (head); \
	     pos = tmp, tmp = pos->next)

#endif /* USM_LIST_H */
