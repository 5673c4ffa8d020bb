/* The host side of qkd_transport_plugin.h has no C code: Swift loads plugins with dlopen and
 * calls them through the function-pointer types of the header. This file only makes the header
 * a C target (SwiftPM needs a source) and checks that it compiles as C. */
#include "qkd_transport_plugin.h"

_Static_assert(QKD_TRANSPORT_PLUGIN_ABI_VERSION >= 1u, "ABI versions start at 1");
