// SPDX-License-Identifier: GPL-2.0-only
/* A context survives exec: the new image finds its descriptor by number and the server its new memory. */
#include <stdlib.h>
#include "client.h"

int main(int argc, char **argv)
{
	if (argc == 3) {
		int fd = atoi(argv[1]);
		uint32_t ioas = (uint32_t)atoi(argv[2]);
		char *buf = pages(4096);
		struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, 4096, 0 };
		int e = call(fd, IOAS_MAP, &m);
		printf("after exec map %s iova=0x%llx\n", errname(e), (unsigned long long)m.iova);
		printf("after exec check_refs(1) %s\n", errname(check_refs(fd, buf, 4096, 1)));
		return 0;
	}
	int fd = open("/dev/iommu", O_RDWR);
	uint32_t ioas = ioas_alloc(fd);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	printf("mock_domain %s\n", errname(call(fd, TEST_CMD, &md)));
	fflush(stdout);
	char fdtext[16], ioastext[16];
	snprintf(fdtext, sizeof(fdtext), "%d", fd);
	snprintf(ioastext, sizeof(ioastext), "%u", ioas);
	execl("/proc/self/exe", argv[0], fdtext, ioastext, (char *)NULL);
	perror("execl");
	return 1;
}
