// SPDX-License-Identifier: GPL-2.0-only
/*
 * Two maps, the first with neither READ nor WRITE: since v6.11 the kernel refuses it (EINVAL), before it
 * mapped it. Recorded against one and decoded by the model of the other, both calls disagree.
 */
#include "client.h"

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) {
		printf("open %s\n", errname(errno));
		return 1;
	}
	uint32_t ioas = ioas_alloc(fd);
	char *buf = pages(2 * 4096);
	struct t_map bare = { sizeof(bare), 0, ioas, 0, (uintptr_t)buf, 4096, 0 };
	printf("map without prot %s\n", errname(call(fd, IOAS_MAP, &bare)));
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)(buf + 4096), 4096, 0 };
	int e = call(fd, IOAS_MAP, &m);
	printf("map %s iova=0x%llx\n", errname(e), (unsigned long long)m.iova);
	return 0;
}
