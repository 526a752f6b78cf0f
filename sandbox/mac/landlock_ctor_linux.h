#ifndef GOVMM_LANDLOCK_CTOR_H
#define GOVMM_LANDLOCK_CTOR_H

#define GOVMM_LANDLOCK_RO_ENV "GOVMM_LANDLOCK_RO"
#define GOVMM_LANDLOCK_RW_ENV "GOVMM_LANDLOCK_RW"

extern int govmm_landlock_ctor_state;
extern const char *govmm_landlock_ctor_step;
extern char govmm_landlock_ctor_path[4096];

#endif
