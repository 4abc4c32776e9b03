// SPDX-License-Identifier: GPL-2.0-only
/*
 * IOMMU_IOAS_CHANGE_PROCESS (0x92, v6.13) at the ioctl boundary: the table's size rules, the reserved field,
 * a context with nothing mapped (nothing to move: ok), and one with a user-VA mapping (EINVAL).
 */
#include "client.h"

struct t_change_process { uint32_t size, reserved; };
#define IOAS_CHANGE_PROCESS REQ(0x92)

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 1;
	struct t_change_process cp = { sizeof(cp), 0 };
	printf("change_process empty %s\n", errname(call(fd, IOAS_CHANGE_PROCESS, &cp)));
	cp.reserved = 1;
	printf("change_process reserved=1 %s\n", errname(call(fd, IOAS_CHANGE_PROCESS, &cp)));
	cp.reserved = 0;
	cp.size = 4;
	printf("change_process size 4 %s\n", errname(call(fd, IOAS_CHANGE_PROCESS, &cp)));
	struct { struct t_change_process c; uint32_t tail[2]; } big = { { 16, 0 }, { 0, 1 } };
	printf("change_process size 16 non-zero tail %s\n", errname(call(fd, IOAS_CHANGE_PROCESS, &big)));

	uint32_t ioas = ioas_alloc(fd);
	char *buf = pages(8192);
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE | MAP_FIXED_IOVA, ioas, 0, (uintptr_t)buf, 8192,
			   0x1000000 };
	printf("map %s\n", errname(call(fd, IOAS_MAP, &m)));
	cp.size = sizeof(cp);
	printf("change_process with a user-VA area %s\n", errname(call(fd, IOAS_CHANGE_PROCESS, &cp)));
	struct t_unmap u = { sizeof(u), ioas, 0x1000000, 8192 };
	printf("unmap %s length=%llu\n", errname(call(fd, IOAS_UNMAP, &u)), (unsigned long long)u.length);
	printf("change_process after unmap %s\n", errname(call(fd, IOAS_CHANGE_PROCESS, &cp)));
	return 0;
}
