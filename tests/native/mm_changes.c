// SPDX-License-Identifier: GPL-2.0-only
/*
 * The server keeps a process's mappings from one ioctl to the next while the library counts no change of
 * its address space: each change below comes between two calls, and the second must see it. Through the
 * C library (counted) and behind it (raw syscalls, malloc's own mmap: not counted).
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <stdlib.h>
#include "client.h"

/* IOMMU_IOAS_IOVA_RANGES with its struct at `at`: reads it, writes the range array and then the struct. */
static int ranges_at(int fd, uint32_t ioas, void *at)
{
	static struct t_range r[1];
	struct t_iova_ranges q = { sizeof(q), ioas, 1, 0, (uintptr_t)r, 0 };
	memcpy(at, &q, sizeof(q));
	return call(fd, IOVA_RANGES, at);
}

/* The same call on a struct the program cannot (or no longer can) write first. */
static int ranges_in_place(int fd, void *at)
{
	return call(fd, IOVA_RANGES, at);
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 1;
	uint32_t ioas = ioas_alloc(fd);
	char *page = pages(4096);

	printf("rw page %s\n", errname(ranges_at(fd, ioas, page)));
	mprotect(page, 4096, PROT_READ);
	printf("after mprotect(PROT_READ) %s\n", errname(ranges_in_place(fd, page)));
	mprotect(page, 4096, PROT_READ | PROT_WRITE);
	printf("after mprotect(PROT_READ|PROT_WRITE) %s\n", errname(ranges_at(fd, ioas, page)));

	char *target = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *moved = mremap(page, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	printf("mremap %s\n", moved == MAP_FAILED ? "failed" : "ok");
	printf("old address after mremap %s\n", errname(ranges_in_place(fd, page)));
	printf("new address after mremap %s\n", errname(ranges_in_place(fd, moved)));

	/* MADV_DONTNEED drops the private page: the struct reads back as zeroes, a size below the minimum. */
	madvise(moved, 4096, MADV_DONTNEED);
	printf("after madvise(MADV_DONTNEED) %s\n", errname(ranges_in_place(fd, moved)));
	printf("rewritten %s\n", errname(ranges_at(fd, ioas, moved)));

	munmap(moved, 4096);
	printf("after munmap %s\n", errname(ranges_in_place(fd, moved)));

	/* Behind the library: a raw mmap and malloc's own mapping are found, a raw munmap faults. */
	char *raw = (char *)syscall(SYS_mmap, NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("raw mmap %s\n", errname(ranges_at(fd, ioas, raw)));
	syscall(SYS_munmap, raw, 4096);
	printf("after raw munmap %s\n", errname(ranges_in_place(fd, raw)));
	char *big = malloc(1 << 20);
	printf("malloc(1 MiB) %s\n", errname(ranges_at(fd, ioas, big + (1 << 19))));
	return 0;
}
