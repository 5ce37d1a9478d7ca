/* An intrusive doubly-linked list: the links live in the listed object, so
 * adding and removing never allocate. Used for connection timers, the
 * worker's connections and the chain cache's LRU order. */
#ifndef MTLSD_LIST_H
#define MTLSD_LIST_H

#include <stddef.h>

struct mtls_link {
    struct mtls_link *prev, *next;
};

struct mtls_list {
    struct mtls_link *head, *tail;
};

#define mtls_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void mtls_list_push_back(struct mtls_list *l, struct mtls_link *n)
{
    n->prev = l->tail;
    n->next = NULL;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static inline void mtls_list_push_front(struct mtls_list *l, struct mtls_link *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

static inline void mtls_list_unlink(struct mtls_list *l, struct mtls_link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

#endif
