// SPDX-License-Identifier: GPL-2.0-only
/* File lifetime: a dup keeps the context after the first close; a forked child shares it. */
#include <sys/wait.h>
#include "client.h"

static int ranges_of(int fd, uint32_t ioas)
{
	struct t_range r[1];
	struct t_iova_ranges q = { sizeof(q), ioas, 1, 0, (uintptr_t)r, 0 };
	return call(fd, IOVA_RANGES, &q);
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	uint32_t ioas = ioas_alloc(fd);
	int copy = dup(fd);
	int high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	close(fd);
	printf("closed original, dup sees ioas %s\n", errname(ranges_of(copy, ioas)));
	printf("F_DUPFD copy at %d sees ioas %s\n", high, errname(ranges_of(high, ioas)));
	printf("closed fd %s\n", errname(ranges_of(fd, ioas)));

	char *buf = pages(4096);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	printf("mock_domain %s\n", errname(call(copy, TEST_CMD, &md)));
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, 4096, 0 };
	int e = call(copy, IOAS_MAP, &m);
	printf("parent map %s iova=0x%llx\n", errname(e), (unsigned long long)m.iova);
	fflush(stdout);

	pid_t child = fork();
	if (child == 0) {
		/* The child uses the inherited descriptor: same context, its own control connection. */
		char *mine = pages(8192);
		struct t_map cm = { sizeof(cm), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)mine, 8192, 0 };
		int ce = call(copy, IOAS_MAP, &cm);
		printf("child map %s iova=0x%llx\n", errname(ce), (unsigned long long)cm.iova);
		printf("child check_refs(1) %s\n", errname(check_refs(copy, mine, 8192, 1)));
		struct t_unmap u = { sizeof(u), ioas, cm.iova, 8192 };
		ce = call(copy, IOAS_UNMAP, &u);
		printf("child unmap %s length=%llu\n", errname(ce), (unsigned long long)u.length);
		fflush(stdout);
		_exit(5);
	}
	int status;
	waitpid(child, &status, 0);
	printf("child exit %d\n", WEXITSTATUS(status));
	printf("parent check_refs(1) %s\n", errname(check_refs(copy, buf, 4096, 1)));
	close(copy);
	printf("last copy %s\n", errname(ranges_of(high, ioas)));
	close(high);
	return 0;
}
