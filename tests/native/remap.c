// SPDX-License-Identifier: GPL-2.0-only
/*
 * The model follows the program's address space. Memory mapped into an IOAS and then unmapped by the
 * program stays pinned in the kernel, but the address is empty: new memory mapped there is other pages,
 * with no pin, and MADV_DONTNEED gives private memory fresh pages too. MD_CHECK_REFS counts the pins of
 * the pages the address holds now, so it tells the old pages from the new ones.
 */
#define _GNU_SOURCE
#include "client.h"

#define IOVA_A 0x1000000ull
#define IOVA_B 0x2000000ull
#define LEN (2 * 4096ull)

static int map_fixed(int fd, uint32_t ioas, void *buf, uint64_t iova)
{
	struct t_map m = { sizeof(m), MAP_FIXED_IOVA | MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, LEN, iova };
	return call(fd, IOAS_MAP, &m);
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 1;
	uint32_t ioas = ioas_alloc(fd);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	printf("mock domain %s\n", errname(call(fd, TEST_CMD, &md)));
	char *buf = pages(LEN);

	printf("map %s\n", errname(map_fixed(fd, ioas, buf, IOVA_A)));
	printf("refs 1 %s\n", errname(check_refs(fd, buf, LEN, 1)));

	/* munmap, then new memory at the same address: the pinned pages are no longer there. */
	munmap(buf, LEN);
	printf("refs after munmap %s\n", errname(check_refs(fd, buf, LEN, 0)));
	char *again = mmap(buf, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	memset(again, 0x33, LEN);
	printf("remapped at the same address %s\n", again == buf ? "yes" : "no");
	printf("refs 0 %s\n", errname(check_refs(fd, buf, LEN, 0)));
	printf("map again %s\n", errname(map_fixed(fd, ioas, buf, IOVA_B)));
	printf("refs 1 %s\n", errname(check_refs(fd, buf, LEN, 1)));

	/* MADV_DONTNEED of private memory: the next touch gets fresh zeroed pages, the pinned ones stay pinned. */
	madvise(buf, LEN, MADV_DONTNEED);
	memset(buf, 0x44, LEN);
	printf("refs after MADV_DONTNEED %s\n", errname(check_refs(fd, buf, LEN, 0)));

	struct t_unmap u = { sizeof(u), ioas, 0, UINT64_MAX };
	int e = call(fd, IOAS_UNMAP, &u);
	printf("unmap all %s unmapped=%llu\n", errname(e), (unsigned long long)u.length);
	return 0;
}
