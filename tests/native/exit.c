// SPDX-License-Identifier: GPL-2.0-only
/*
 * A process's exit is the kernel's do_exit: its address space goes first (exit_mm), its files after. So a
 * child that mapped its memory into a shared IOAS and exited leaves pages that can no longer be pinned: a
 * mock domain attached later must fill itself from the gone mm, which fails (EFAULT), as the selftest's
 * iommufd_ioas.no_domain.fork_gone expects. Pages pinned while the child lived stay pinned after it.
 * Last, a child holding the only descriptor of a context exits: the context is released after its mm.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include "client.h"

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

static int unmap(int fd, uint32_t ioas, uint64_t iova, uint64_t length, uint64_t *out)
{
	struct t_unmap u = { sizeof(u), ioas, iova, length };
	int e = call(fd, IOAS_UNMAP, &u);
	*out = u.length;
	return e;
}

/* Fork a child that maps `length` bytes of its own copy of buf at iova, prints, and exits. */
static void child_maps(int fd, uint32_t ioas, void *buf, uint64_t length, uint64_t iova)
{
	int status;
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		printf("child map %s\n", errname(map_fixed(fd, ioas, buf, length, iova)));
		exit(0);
	}
	waitpid(child, &status, 0);
	printf("child exit %d\n", WEXITSTATUS(status));
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	uint64_t out;
	char *buf = pages(16384);

	/* No domain: the child's map only records the range; nothing is pinned yet. */
	uint32_t a = ioas_alloc(fd);
	child_maps(fd, a, buf, 16384, 1u << 24);
	printf("mock_domain after the child is gone %s\n", errname(mock_domain(fd, a)));
	int e = unmap(fd, a, 1u << 24, 16384, &out);
	printf("unmap %s length=%llu\n", errname(e), (unsigned long long)out);

	/* A domain first: the child's map pins its pages into it, and they stay pinned after its exit. */
	uint32_t b = ioas_alloc(fd);
	printf("mock_domain %s\n", errname(mock_domain(fd, b)));
	child_maps(fd, b, buf, 16384, 1u << 24);
	printf("second mock_domain shares the first's domain %s\n", errname(mock_domain(fd, b)));
	printf("parent's own pages have no pin: check_refs(0) %s\n", errname(check_refs(fd, buf, 16384, 0)));
	e = unmap(fd, b, 1u << 24, 16384, &out);
	printf("unmap %s length=%llu\n", errname(e), (unsigned long long)out);

	/* A child that holds the last descriptor: its exit releases the context after its mm is gone. */
	int fd2 = open("/dev/iommu", O_RDWR);
	uint32_t c = ioas_alloc(fd2);
	printf("mock_domain %s\n", errname(mock_domain(fd2, c)));
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		close(fd);
		printf("last holder map %s\n", errname(map_fixed(fd2, c, buf, 8192, 1u << 24)));
		exit(3);
	}
	close(fd2);
	int status;
	waitpid(child, &status, 0);
	printf("last holder exit %d\n", WEXITSTATUS(status));
	/* The next call finds the child's exit, and the context it released, done before it. */
	printf("check_refs(0) %s\n", errname(check_refs(fd, buf, 8192, 0)));
	return 0;
}
