// SPDX-License-Identifier: GPL-2.0-only
/*
 * MAP_SHARED anonymous memory stays shared across fork, as the selftest's buffer does: parent and child map
 * the same frames. First the shape of iommufd_ioas.two_mock_domain.fork_gone: a domain, a child maps the
 * shared buffer and exits (its pages stay pinned in the domain), a second mock domain fills from the
 * first, and an access reads what the parent then writes into the buffer and writes what the parent then
 * reads. Then pages pinned before the fork: the child's pages are the pinned frames themselves (no copy at
 * fork: the COW-for-DMA copy is for private anonymous pages), and what the child writes the parent sees.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include "client.h"

/* len bytes of populated shared anonymous memory at a 1 MiB aligned address (the VMA then starts inside
 * its shmem object: the head trimmed off keeps the offsets honest). */
static void *shared_pages(size_t len)
{
	const uintptr_t align = 1u << 20;
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	char *at = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
	if (at == p)
		at += align / 2;
	munmap(p, (size_t)(at - p));
	munmap(at + len, (size_t)(p + len + align - (at + len)));
	memset(at, 0x5a, len);
	return at;
}

static int map_fixed(int fd, uint32_t ioas, void *buf, uint64_t length, uint64_t iova)
{
	struct t_map m = { sizeof(m), MAP_FIXED_IOVA | MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, length, iova };
	return call(fd, IOAS_MAP, &m);
}

static int mock_domain(int fd, uint32_t ioas)
{
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	return call(fd, TEST_CMD, &md);
}

static int create_access(int fd, uint32_t ioas, int *out)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_CREATE_ACCESS, .id = ioas };
	int e = call(fd, TEST_CMD, &c);
	*out = (int)c.create_access.out_access_fd;
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

int main(void)
{
	const uint64_t iova = 1u << 24;
	int fd = open("/dev/iommu", O_RDWR);
	char out[8] = { 0 };
	int status, access;
	char *buf = shared_pages(16384);

	/* two_mock_domain.fork_gone: the child's map pins the shared pages, which outlive the child. */
	uint32_t a = ioas_alloc(fd);
	printf("mock_domain %s\n", errname(mock_domain(fd, a)));
	printf("create_access %s\n", errname(create_access(fd, a, &access)));
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		printf("child map %s\n", errname(map_fixed(fd, a, buf, 16384, iova)));
		exit(0);
	}
	waitpid(child, &status, 0);
	printf("child exit %d\n", WEXITSTATUS(status));
	printf("second mock_domain %s\n", errname(mock_domain(fd, a)));
	printf("parent's pages are the pinned ones: check_refs(1) %s\n", errname(check_refs(fd, buf, 16384, 1)));
	memcpy(buf + 4096, "PARENT", 6);
	int e = access_rw(fd, access, iova + 4096, out, 6, 0);
	printf("access_rw read %s \"%s\"\n", errname(e), out);
	e = access_rw(fd, access, iova + 8192, (void *)"DEVICE", 6, 1);
	printf("access_rw write %s, the parent reads \"%.6s\"\n", errname(e), buf + 8192);

	/* Pinned before the fork: the child maps the pinned frames, and its write reaches the parent. */
	char *buf2 = shared_pages(8192);
	uint32_t b = ioas_alloc(fd);
	printf("mock_domain %s\n", errname(mock_domain(fd, b)));
	printf("map %s\n", errname(map_fixed(fd, b, buf2, 8192, iova)));
	fflush(stdout);
	child = fork();
	if (child == 0) {
		printf("child's pages hold the pins: check_refs(1) %s\n", errname(check_refs(fd, buf2, 8192, 1)));
		memcpy(buf2 + 100, "CHILD", 5);
		exit(0);
	}
	waitpid(child, &status, 0);
	printf("child exit %d, the parent reads \"%.5s\"\n", WEXITSTATUS(status), buf2 + 100);
	printf("create_access %s\n", errname(create_access(fd, b, &access)));
	memset(out, 0, sizeof(out));
	e = access_rw(fd, access, iova + 100, out, 5, 0);
	printf("access_rw read %s \"%s\"\n", errname(e), out);
	return 0;
}
