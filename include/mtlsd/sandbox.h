/* Privileges and file access after start-up: --user, PR_SET_NO_NEW_PRIVS
 * and a Landlock rule set. Called once, after the listeners are bound and
 * every file is loaded, before any thread starts (Landlock applies to the
 * calling thread and what it creates later). */
#ifndef MTLSD_SANDBOX_H
#define MTLSD_SANDBOX_H

#include "mtlsd/config.h"

#include <stddef.h>

int mtls_sandbox_apply(const struct mtls_config *cfg, char *err, size_t errlen);

#endif
