/*
 * sendfile_64k.c - LD_PRELOAD: every sendfile sends at most 64 KiB, as a server that
 * sends a large file in small fixed chunks would. Nothing changes for the 4 KiB file;
 * in the large workload (1 MiB per request) the deterministic gate must name it:
 * "epoll, large: sendfile +15.00/request" (16 calls per MiB instead of 1).
 */
#include "inject.h"

#define CHUNK_MAX (64 * 1024)

size_t inject_sendfile_count(size_t count)
{
    return count < CHUNK_MAX ? count : CHUNK_MAX;
}
