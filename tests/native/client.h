/* SPDX-License-Identifier: GPL-2.0-only */
/* The iommufd ABI as the test clients use it (our own layouts of the v6.12 structs), and small helpers. */
#ifndef IOPTRACE_TEST_CLIENT_H
#define IOPTRACE_TEST_CLIENT_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define REQ(nr) (0x3b00u | (nr))
#define DESTROY REQ(0x80)
#define IOAS_ALLOC REQ(0x81)
#define ALLOW_IOVAS REQ(0x82)
#define IOAS_COPY REQ(0x83)
#define IOVA_RANGES REQ(0x84)
#define IOAS_MAP REQ(0x85)
#define IOAS_UNMAP REQ(0x86)
#define OPTION REQ(0x87)
#define TEST_CMD REQ(0xa0)

#define MAP_FIXED_IOVA 1u
#define MAP_WRITEABLE 2u
#define MAP_READABLE 4u

struct t_destroy { uint32_t size, id; };
struct t_ioas_alloc { uint32_t size, flags, out_ioas_id; };
struct t_range { uint64_t start, last; };
struct t_iova_ranges { uint32_t size, ioas_id, num_iovas, reserved; uint64_t allowed_iovas, out_iova_alignment; };
struct t_allow_iovas { uint32_t size, ioas_id, num_iovas, reserved; uint64_t allowed_iovas; };
struct t_map { uint32_t size, flags, ioas_id, reserved; uint64_t user_va, length, iova; };
struct t_copy { uint32_t size, flags, dst_ioas_id, src_ioas_id; uint64_t length, dst_iova, src_iova; };
struct t_unmap { uint32_t size, ioas_id; uint64_t iova, length; };
struct t_test_cmd {
	uint32_t size, op, id, reserved;
	union {
		struct { uint32_t out_stdev_id, out_hwpt_id, out_idev_id; } mock_domain;
		struct { uint64_t iova, length, uptr; } check_map;
		struct { uint64_t length, uptr; uint32_t refs; } check_refs;
		struct { uint64_t start, length; } add_reserved;
		struct { uint32_t out_stdev_id, out_hwpt_id, out_idev_id, dev_flags; } mock_domain_flags;
		struct { uint32_t out_access_fd, flags; } create_access;
		struct { uint32_t access_pages_id; } destroy_access_pages;
		struct { uint32_t flags, out_access_pages_id; uint64_t iova, length, uptr; } access_pages;
		struct { uint64_t iova, length, uptr; uint32_t flags; } access_rw;
		struct { uint32_t limit; } memory_limit;
		struct { uint32_t ioas_id; } access_replace_ioas;
		uint64_t pad[6];
	};
	uint32_t last;
};

#define OP_MOCK_DOMAIN 2
#define OP_MD_CHECK_MAP 3
#define OP_MD_CHECK_REFS 4
#define OP_ADD_RESERVED 1
#define OP_CREATE_ACCESS 5
#define OP_DESTROY_ACCESS_PAGES 6
#define OP_ACCESS_PAGES 7
#define OP_ACCESS_RW 8
#define OP_SET_TEMP_MEMORY_LIMIT 9
#define OP_ACCESS_REPLACE_IOAS 11
#define OP_MOCK_DOMAIN_FLAGS 12

struct t_option { uint32_t size, option_id; uint16_t op, reserved; uint32_t object_id; uint64_t val64; };

/* Print one result line: "what rc errno-name". */
static inline const char *errname(int e)
{
	switch (e) {
	case 0: return "ok";
	case ENOENT: return "ENOENT";
	case E2BIG: return "E2BIG";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case EMSGSIZE: return "EMSGSIZE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EOVERFLOW: return "EOVERFLOW";
	case EBADF: return "EBADF";
	case EBADFD: return "EBADFD";
	case EPERM: return "EPERM";
	case ENOMEM: return "ENOMEM";
	case EADDRINUSE: return "EADDRINUSE";
	case ENODEV: return "ENODEV";
	default: return "other";
	}
}

static inline int call(int fd, unsigned long req, void *arg)
{
	int r = ioctl(fd, req, arg);
	return r < 0 ? errno : 0;
}

static inline uint32_t ioas_alloc(int fd)
{
	struct t_ioas_alloc a = { sizeof(a), 0, 0 };
	int e = call(fd, IOAS_ALLOC, &a);
	printf("ioas_alloc %s id=%u\n", errname(e), a.out_ioas_id);
	return a.out_ioas_id;
}

/*
 * len bytes of populated anonymous memory at a 1 MiB aligned address: the kernel aligns an allocated IOVA
 * to the user address's low bits, so an aligned buffer makes the IOVAs the same in every run.
 */
static inline void *pages(size_t len)
{
	const uintptr_t align = 1u << 20;
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	char *at = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
	if (at > p)
		munmap(p, (size_t)(at - p));
	munmap(at + len, (size_t)(p + align - at));
	memset(at, 0x5a, len);
	return at;
}

static inline int check_refs(int fd, void *uptr, uint64_t length, uint32_t refs)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_MD_CHECK_REFS };
	c.check_refs.length = length;
	c.check_refs.uptr = (uintptr_t)uptr;
	c.check_refs.refs = refs;
	return call(fd, TEST_CMD, &c);
}

#endif
