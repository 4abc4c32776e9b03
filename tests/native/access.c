// SPDX-License-Identifier: GPL-2.0-only
/*
 * The selftest's access file and the other IOMMU_TEST_CMD sub-ops a driver-side test uses: CREATE_ACCESS
 * hands out a real close-on-exec descriptor (the lowest free one, none left behind on failure), pins and
 * their items, reads and writes through the access into this process's memory, the last close of the
 * access file unpinning what it held, SET_TEMP_MEMORY_LIMIT, ADD_RESERVED, MOCK_DOMAIN_FLAGS and
 * IOMMU_OPTION.
 */
#include "client.h"

static int create_access(int fd, uint32_t ioas, uint32_t flags, int *out)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_CREATE_ACCESS, .id = ioas };
	c.create_access.flags = flags;
	int e = call(fd, TEST_CMD, &c);
	*out = (int)c.create_access.out_access_fd;
	return e;
}

static int access_pages(int fd, int access, uint64_t iova, uint64_t length, uint32_t flags, uint32_t *id)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_ACCESS_PAGES, .id = (uint32_t)access };
	c.access_pages.flags = flags;
	c.access_pages.iova = iova;
	c.access_pages.length = length;
	int e = call(fd, TEST_CMD, &c);
	*id = c.access_pages.out_access_pages_id;
	return e;
}

static int access_rw(int fd, int access, uint64_t iova, void *buf, uint64_t length, uint32_t flags)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_ACCESS_RW, .id = (uint32_t)access };
	c.access_rw.iova = iova;
	c.access_rw.length = length;
	c.access_rw.uptr = (uintptr_t)buf;
	c.access_rw.flags = flags;
	return call(fd, TEST_CMD, &c);
}

static int destroy_item(int fd, int access, uint32_t item)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_DESTROY_ACCESS_PAGES, .id = (uint32_t)access };
	c.destroy_access_pages.access_pages_id = item;
	return call(fd, TEST_CMD, &c);
}

static int option(int fd, uint32_t id, uint16_t op, uint32_t object, uint64_t *val)
{
	struct t_option o = { sizeof(o), id, op, 0, object, *val };
	int e = call(fd, OPTION, &o);
	*val = o.val64;
	return e;
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	uint32_t ioas = ioas_alloc(fd);
	char *buf = pages(16384);
	const uint64_t iova = 0x100000;
	struct t_map map = { sizeof(map), MAP_FIXED_IOVA | MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, 16384, iova };
	printf("map %s\n", errname(call(fd, IOAS_MAP, &map)));

	int access, lowest = dup(0);
	close(lowest);
	printf("create_access flags=2 %s\n", errname(create_access(fd, ioas, 2, &access)));
	printf("create_access ioas 99 %s\n", errname(create_access(fd, 99, 1, &access)));
	int probe = dup(0);
	printf("no descriptor left behind %s\n", probe == lowest ? "yes" : "no");
	close(probe);
	int e = create_access(fd, ioas, 1, &access);
	printf("create_access %s lowest=%s cloexec=%d\n", errname(e), access == lowest ? "yes" : "no",
	       (fcntl(access, F_GETFD) & FD_CLOEXEC) != 0);

	uint32_t item = 99;
	e = access_pages(fd, access, iova + 4096, 8192, 1, &item);
	printf("access_pages %s item=%u\n", errname(e), item);
	printf("check_refs(1) %s\n", errname(check_refs(fd, buf + 4096, 8192, 1)));
	printf("check_refs(0) outside %s\n", errname(check_refs(fd, buf, 4096, 0)));
	printf("access_pages flags=0x100 %s\n", errname(access_pages(fd, access, iova, 4096, 0x100, &item)));
	printf("access_pages on stdin %s\n", errname(access_pages(fd, 0, iova, 4096, 0, &item)));
	printf("access_pages 17 MiB %s\n", errname(access_pages(fd, access, iova, 17u << 20, 0, &item)));
	struct t_destroy d = { sizeof(d), ioas };
	printf("destroy ioas with access %s\n", errname(call(fd, DESTROY, &d)));

	char out[8] = { 0 };
	memcpy(buf + 100, "hello", 5);
	e = access_rw(fd, access, iova + 100, out, 5, 0);
	printf("access_rw read %s \"%s\"\n", errname(e), out);
	e = access_rw(fd, access, iova + 4094, (void *)"WORLD", 5, 1);
	printf("access_rw write across pages %s \"%.5s\"\n", errname(e), buf + 4094);
	printf("access_rw slow path %s\n", errname(access_rw(fd, access, iova + 100, out, 5, 4)));
	printf("access_rw flags=2 %s\n", errname(access_rw(fd, access, iova, out, 5, 2)));
	printf("access_rw past the map %s\n", errname(access_rw(fd, access, iova + 16380, out, 8, 0)));

	printf("destroy item 0 %s\n", errname(destroy_item(fd, access, 0)));
	printf("destroy item 0 again %s\n", errname(destroy_item(fd, access, 0)));
	printf("check_refs(0) after %s\n", errname(check_refs(fd, buf + 4096, 8192, 0)));
	e = access_pages(fd, access, iova, 4096, 0, &item);
	printf("access_pages %s item=%u\n", errname(e), item);
	int copy = dup(access);
	close(access);
	printf("dup still pins: check_refs(1) %s\n", errname(check_refs(fd, buf, 4096, 1)));
	close(copy);
	printf("last close unpins: check_refs(0) %s\n", errname(check_refs(fd, buf, 4096, 0)));
	printf("access_pages on the closed fd %s\n", errname(access_pages(fd, copy, iova, 4096, 0, &item)));

	struct t_test_cmd c = { .size = sizeof(c), .op = OP_SET_TEMP_MEMORY_LIMIT };
	c.memory_limit.limit = 11;
	printf("temp limit 11 %s\n", errname(call(fd, TEST_CMD, &c)));
	c.memory_limit.limit = 16;
	printf("temp limit 16 %s\n", errname(call(fd, TEST_CMD, &c)));
	c.memory_limit.limit = 65536;
	call(fd, TEST_CMD, &c);

	struct t_test_cmd r = { .size = sizeof(r), .op = OP_ADD_RESERVED, .id = ioas };
	r.add_reserved.start = 0x200000;
	r.add_reserved.length = 0x1000;
	printf("add_reserved %s\n", errname(call(fd, TEST_CMD, &r)));
	r.add_reserved.length = 0;
	printf("add_reserved length 0 %s\n", errname(call(fd, TEST_CMD, &r)));
	r.add_reserved.start = ~0ull;
	r.add_reserved.length = 2;
	printf("add_reserved past 2^64 %s\n", errname(call(fd, TEST_CMD, &r)));
	r.add_reserved.start = iova;
	r.add_reserved.length = 0x1000;
	printf("add_reserved over the map %s\n", errname(call(fd, TEST_CMD, &r)));
	map.iova = 0x1ff000;
	map.length = 8192;
	printf("map over the reserved range %s\n", errname(call(fd, IOAS_MAP, &map)));

	uint64_t v = 7;
	e = option(fd, 0, 1, 0, &v);
	printf("rlimit get %s val=%llu\n", errname(e), (unsigned long long)v);
	v = 1;
	printf("rlimit set 1 with objects %s\n", errname(option(fd, 0, 0, 0, &v)));
	e = option(fd, 1, 1, ioas, &v);
	printf("huge get %s val=%llu\n", errname(e), (unsigned long long)v);
	v = 0;
	printf("huge set 0 %s\n", errname(option(fd, 1, 0, ioas, &v)));
	e = option(fd, 1, 1, ioas, &v);
	printf("huge get %s val=%llu\n", errname(e), (unsigned long long)v);
	v = 2;
	printf("huge set 2 %s\n", errname(option(fd, 1, 0, ioas, &v)));
	printf("huge get ioas 99 %s\n", errname(option(fd, 1, 1, 99, &v)));
	printf("option 9 %s\n", errname(option(fd, 9, 1, 0, &v)));

	/* A fresh IOAS: the first one's map lies outside the mock aperture, where attaching is EADDRINUSE. */
	struct t_test_cmd m = { .size = sizeof(m), .op = OP_MOCK_DOMAIN_FLAGS, .id = ioas_alloc(fd) };
	m.mock_domain_flags.dev_flags = 4;
	printf("mock_domain_flags PASID %s\n", errname(call(fd, TEST_CMD, &m)));
	m.mock_domain_flags.dev_flags = 1;
	e = call(fd, TEST_CMD, &m);
	printf("mock_domain_flags NO_DIRTY %s stdev=%u\n", errname(e), m.mock_domain_flags.out_stdev_id);

	int fd2 = open("/dev/iommu", O_RDWR);
	v = 1;
	printf("new context: rlimit set 1 %s\n", errname(option(fd2, 0, 0, 0, &v)));
	e = option(fd2, 0, 1, 0, &v);
	printf("rlimit get %s val=%llu\n", errname(e), (unsigned long long)v);
	close(fd2);
	close(fd);
	return 0;
}
