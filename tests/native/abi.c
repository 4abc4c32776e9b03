// SPDX-License-Identifier: GPL-2.0-only
/* The ioctl ABI rules: sizes, tails, bad pointers, unknown numbers and flags, reserved fields, ids. */
#include "client.h"

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 1;
	uint32_t ioas = ioas_alloc(fd);

	/* Sizes: below the minimum, a larger struct with a zero tail, and with a non-zero tail. */
	struct { struct t_ioas_alloc a; uint32_t tail[3]; } big = { { 8, 0, 0 }, { 0, 0, 0 } };
	printf("size 8 %s\n", errname(call(fd, IOAS_ALLOC, &big)));
	big.a.size = sizeof(big);
	int e = call(fd, IOAS_ALLOC, &big);
	printf("size 24 zero tail %s id=%u\n", errname(e), big.a.out_ioas_id);
	big.a.out_ioas_id = 0;
	big.tail[2] = 1;
	e = call(fd, IOAS_ALLOC, &big);
	printf("size 24 non-zero tail %s id=%u\n", errname(e), big.a.out_ioas_id);

	/* A tail running into a page that cannot be read: EFAULT, unless a non-zero byte comes first. */
	char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(two + 4096, 4096, PROT_NONE);
	struct t_ioas_alloc *edge = (struct t_ioas_alloc *)(two + 4096 - 16);
	memset(edge, 0, 16);
	edge->size = 64;
	printf("tail into PROT_NONE %s\n", errname(call(fd, IOAS_ALLOC, edge)));
	two[4095] = 1;
	printf("non-zero before the fault %s\n", errname(call(fd, IOAS_ALLOC, edge)));

	/* Bad pointers. */
	printf("NULL arg %s\n", errname(call(fd, IOAS_ALLOC, NULL)));
	printf("PROT_NONE arg %s\n", errname(call(fd, IOAS_ALLOC, two + 4096)));

	/* Unknown requests and flags, reserved fields. */
	printf("unknown nr %s\n", errname(call(fd, REQ(0x9f), &big)));
	printf("size bits in the number %s\n", errname(call(fd, _IOW(';', 0x81, struct t_ioas_alloc), &big)));
	/* A v6.12 command outside the model (dirty tracking): past the table's size checks, ENOTTY. */
	struct { uint32_t size, hwpt_id, flags, reserved; } dirty = { 16, 0, 0, 0 };
	printf("HWPT_SET_DIRTY_TRACKING %s\n", errname(call(fd, REQ(0x8b), &dirty)));
	struct t_ioas_alloc flagged = { sizeof(flagged), 1, 0 };
	printf("alloc flags=1 %s\n", errname(call(fd, IOAS_ALLOC, &flagged)));
	char *buf = pages(8192);
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 1, (uintptr_t)buf, 8192, 0 };
	printf("map reserved=1 %s\n", errname(call(fd, IOAS_MAP, &m)));
	m.reserved = 0;
	m.flags |= 1u << 3;
	printf("map unknown flag %s\n", errname(call(fd, IOAS_MAP, &m)));
	m.flags = MAP_READABLE;
	m.iova = UINT64_MAX;
	printf("map iova 2^64-1 without FIXED_IOVA %s\n", errname(call(fd, IOAS_MAP, &m)));
	m.iova = 0;
	m.ioas_id = 99;
	printf("map unknown ioas %s\n", errname(call(fd, IOAS_MAP, &m)));
	m.length = UINT64_MAX;
	printf("map unknown ioas, length 2^64-1 %s\n", errname(call(fd, IOAS_MAP, &m)));
	struct t_destroy d = { sizeof(d), 99 };
	printf("destroy 99 %s\n", errname(call(fd, DESTROY, &d)));

	/* IOVA ranges: a fresh IOAS allows everything; too small an array is EMSGSIZE with the count. */
	struct t_range r[2] = { { 1, 1 }, { 1, 1 } };
	struct t_iova_ranges q = { sizeof(q), ioas, 0, 0, (uintptr_t)r, 0 };
	e = call(fd, IOVA_RANGES, &q);
	printf("iova_ranges num=0 %s num=%u\n", errname(e), q.num_iovas);
	q.num_iovas = 2;
	e = call(fd, IOVA_RANGES, &q);
	printf("iova_ranges %s num=%u [0x%llx,0x%llx] align=%llu\n", errname(e), q.num_iovas,
	       (unsigned long long)r[0].start, (unsigned long long)r[0].last,
	       (unsigned long long)q.out_iova_alignment);

	/* ALLOW_IOVAS reads the array: a bad pointer is EFAULT. */
	struct t_allow_iovas al = { sizeof(al), ioas, 1, 0, 8 };
	printf("allow_iovas bad array %s\n", errname(call(fd, ALLOW_IOVAS, &al)));

	/* MAP of memory the process never mapped: the pin faults. */
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	printf("mock_domain %s\n", errname(call(fd, TEST_CMD, &md)));
	munmap(buf, 8192);
	struct t_map gone = { sizeof(gone), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)(two + 4096), 4096, 0 };
	printf("map PROT_NONE memory %s\n", errname(call(fd, IOAS_MAP, &gone)));
	printf("check_refs unaligned %s\n", errname(check_refs(fd, two + 1, 4096, 0)));
	return 0;
}
