// SPDX-License-Identifier: GPL-2.0-only
/*
 * The round trip of a trivial ioctl (IOMMU_IOAS_IOVA_RANGES) through libioptrace-preload.so, the server
 * and the model, as the program sees it: N calls, each timed with CLOCK_MONOTONIC; prints the median (the
 * upper one of an even count), the p99 by the nearest-rank rule (bench/timing.ts, quantile) and the minimum.
 */
#include <stdlib.h>
#include <time.h>
#include "../../tests/native/client.h"

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	int fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) {
		perror("open /dev/iommu");
		return 1;
	}
	uint32_t ioas = ioas_alloc(fd);
	struct t_range r[1];
	double *us = calloc((size_t)n, sizeof(*us));
	for (int i = 0; i < n; i++) {
		struct t_iova_ranges q = { sizeof(q), ioas, 1, 0, (uintptr_t)r, 0 };
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (ioctl(fd, IOVA_RANGES, &q)) {
			perror("IOMMU_IOAS_IOVA_RANGES");
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		us[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
	}
	qsort(us, (size_t)n, sizeof(*us), cmp);
	printf("IOMMU_IOAS_IOVA_RANGES round trip over %d calls: median %.1f us, p99 %.1f us, min %.1f us\n", n,
	       us[n / 2], us[(n * 99 + 99) / 100 - 1], us[0]);
	return 0;
}
