// SPDX-License-Identifier: GPL-2.0-only
/*
 * HugePages_Free of /proc/meminfo around a pinned hugetlb page: the page leaves the pool when it is faulted
 * in, and a pin keeps it out after munmap (what a program sees of a pin in a compound page: MD_CHECK_REFS
 * skips those) until the IOAS unmap drops the pin. Printed as differences from the count before the mmap,
 * read with fopen and with open + read. Exit 2 when the pool has no free huge page to take.
 */
#include "client.h"
#include <stdlib.h>

#define HUGE (2ul << 20)

static long free_fopen(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "HugePages_Free:", 15) == 0)
			v = strtol(line + 15, NULL, 10);
	fclose(f);
	return v;
}

static long free_read(void)
{
	static char buf[16384];
	size_t len = 0;
	ssize_t n;
	int fd = open("/proc/meminfo", O_RDONLY);
	const char *at;

	if (fd < 0)
		return -1;
	while (len + 1 < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	at = strstr(buf, "HugePages_Free:");
	return at ? strtol(at + 15, NULL, 10) : -1;
}

static void show(const char *when, long start)
{
	printf("%s: HugePages_Free %+ld (fopen) %+ld (read)\n", when, free_fopen() - start, free_read() - start);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	long start = free_fopen();
	char *p = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED) {
		printf("mmap MAP_HUGETLB %s: no free huge page (HugePages_Free %ld)\n", errname(errno), start);
		return 2;
	}
	memset(p, 0x5a, HUGE);
	show("faulted in", start);

	int fd = open("/dev/iommu", O_RDWR);
	struct t_ioas_alloc a = { sizeof(a), 0, 0 };
	int e = call(fd, IOAS_ALLOC, &a);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = a.out_ioas_id };
	printf("ioas_alloc %s mock_domain %s\n", errname(e), errname(call(fd, TEST_CMD, &md)));
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, a.out_ioas_id, 0, (uintptr_t)p, HUGE, 0 };
	printf("map %s\n", errname(call(fd, IOAS_MAP, &m)));
	show("pinned", start);
	printf("munmap %s\n", errname(munmap(p, HUGE) ? errno : 0));
	show("pinned, unmapped", start);
	struct t_unmap u = { sizeof(u), a.out_ioas_id, m.iova, HUGE };
	printf("unmap %s length=%llu\n", errname(call(fd, IOAS_UNMAP, &u)), (unsigned long long)u.length);
	show("unpinned", start);
	close(fd);
	return 0;
}
