/* Stand-ins for the libcurl functions that Foundation's URLSession links, for
 * scripts/build-static.sh only. Debian ships no static libcurl, and linking
 * the shared one would make the binary NEED libcurl.so.4, which the GPU
 * machine need not have. The static binary therefore has no network: every
 * one of these stops the program with the reason (`cohort download` is the
 * only caller; the GPU machine is offline anyway, data travels in .gpu/). */
#include <stdio.h>
#include <stdlib.h>

static void no_network(const char *function) {
    fprintf(stderr, "cohort (static build): %s: this binary has no network support (libcurl is not linked); "
                    "copy the data set instead of downloading it\n", function);
    abort();
}

#define STUB(name) void *name(void) { no_network(#name); return 0; }
STUB(curl_easy_cleanup) STUB(curl_easy_getinfo) STUB(curl_easy_init) STUB(curl_easy_pause)
STUB(curl_easy_setopt) STUB(curl_easy_strerror) STUB(curl_free) STUB(curl_global_init)
STUB(curl_multi_add_handle) STUB(curl_multi_assign) STUB(curl_multi_cleanup) STUB(curl_multi_info_read)
STUB(curl_multi_init) STUB(curl_multi_remove_handle) STUB(curl_multi_setopt) STUB(curl_multi_socket_action)
STUB(curl_slist_append) STUB(curl_slist_free_all) STUB(curl_url) STUB(curl_url_get) STUB(curl_url_set)
STUB(curl_version) STUB(curl_version_info)
