// The marker variable Start puts into the child's environment (its only
// variable). Kept in sync with envMarker in Go by a test.
#define GOVMM_JAIL_ENV "_GOVMM_JAIL_CHILD"
#define GOVMM_JAIL_ENV_VALUE "1"

extern int govmm_jail_ctor_state;
extern const char *const govmm_jail_env;
