// SPDX-License-Identifier: GPL-2.0-only
/*
 * The VFIO type1 container that iommufd emulates (vfio_compat.c), through /dev/vfio/vfio: its context starts
 * in MM accounting; IOMMU_VFIO_IOAS names the compat IOAS; without one the container ioctls are ENODEV;
 * SET_IOMMU(TYPE1) turns large pages off; GET_INFO's capability chain is written only where argsz holds it;
 * MAP_DMA pins at a fixed IOVA; type1 UNMAP_DMA cuts a slice out of a mapping; UNMAP_ALL needs a zero range.
 */
#include "client.h"

#define VREQ(n) (0x3b00u | (100 + (n)))
#define VFIO_GET_API_VERSION VREQ(0)
#define VFIO_CHECK_EXTENSION VREQ(1)
#define VFIO_SET_IOMMU VREQ(2)
#define VFIO_IOMMU_GET_INFO VREQ(12)
#define VFIO_IOMMU_MAP_DMA VREQ(13)
#define VFIO_IOMMU_UNMAP_DMA VREQ(14)
#define VFIO_IOMMU_DIRTY_PAGES VREQ(17)
#define VFIO_IOAS REQ(0x88)

struct t_vfio_ioas { uint32_t size, ioas_id; uint16_t op, reserved; };
struct t_info { uint32_t argsz, flags; uint64_t iova_pgsizes; uint32_t cap_offset, pad; };
struct t_dma_map { uint32_t argsz, flags; uint64_t vaddr, iova, size; };
struct t_dma_unmap { uint32_t argsz, flags; uint64_t iova, size; };

#define APERTURE_START (1ull << 24)

static int value_call(int fd, unsigned long req, unsigned long value, int *ret)
{
	*ret = ioctl(fd, req, value);
	return *ret < 0 ? errno : 0;
}

static int vfio_ioas(int fd, uint16_t op, uint32_t *id, uint16_t reserved)
{
	struct t_vfio_ioas c = { sizeof(c), *id, op, reserved };
	int e = call(fd, VFIO_IOAS, &c);
	*id = c.ioas_id;
	return e;
}

static int map_dma(int fd, void *va, uint64_t iova, uint64_t size, uint32_t flags, uint32_t argsz)
{
	struct t_dma_map m = { argsz, flags, (uintptr_t)va, iova, size };
	return call(fd, VFIO_IOMMU_MAP_DMA, &m);
}

static int unmap_dma(int fd, uint64_t iova, uint64_t size, uint32_t flags, uint64_t *out)
{
	struct t_dma_unmap u = { sizeof(u), flags, iova, size };
	int e = call(fd, VFIO_IOMMU_UNMAP_DMA, &u);
	*out = u.size;
	return e;
}

/* GET_INFO into a 0xAA-filled buffer with the given argsz; prints the fixed part and the first 72 bytes. */
static void get_info(int fd, uint32_t argsz)
{
	unsigned char buf[96];
	struct t_info *info = (struct t_info *)buf;

	memset(buf, 0xaa, sizeof(buf));
	info->argsz = argsz;
	int e = call(fd, VFIO_IOMMU_GET_INFO, buf);
	printf("get_info argsz=%u %s argsz=%u flags=%u pgsizes=0x%llx cap_offset=0x%x\n", argsz, errname(e),
	       info->argsz, info->flags, (unsigned long long)info->iova_pgsizes, info->cap_offset);
	printf("  bytes 24..72:");
	for (int i = 24; i < 72; i += 4) {
		uint32_t w;
		memcpy(&w, buf + i, 4);
		printf(" %08x", w);
	}
	printf("\n");
}

int main(void)
{
	int fd = open("/dev/vfio/vfio", O_RDWR);
	int ret;
	uint32_t id = 0;
	uint64_t out;

	printf("open %s\n", fd >= 0 ? "ok" : errname(errno));
	struct t_option o = { sizeof(o), 0, 1, 0, 0, 7 };
	int e = call(fd, OPTION, &o);
	printf("rlimit mode %s val=%llu\n", errname(e), (unsigned long long)o.val64);

	e = value_call(fd, VFIO_GET_API_VERSION, 0, &ret);
	printf("api version %s ret=%d\n", errname(e), ret);
	for (unsigned long ext = 1; ext <= 10; ext++) {
		e = value_call(fd, VFIO_CHECK_EXTENSION, ext, &ret);
		printf("check_extension %lu %s ret=%d\n", ext, errname(e), ret);
	}
	e = value_call(fd, VFIO_SET_IOMMU, 3, &ret);
	printf("set_iommu without ioas %s\n", errname(e));
	e = value_call(fd, VFIO_SET_IOMMU, 5, &ret);
	printf("set_iommu type 5 %s\n", errname(e));

	char *buf = pages(16384);
	printf("map_dma argsz=1 %s\n", errname(map_dma(fd, buf, APERTURE_START, 4096, 3, 1)));
	printf("map_dma flags=4 %s\n", errname(map_dma(fd, buf, APERTURE_START, 4096, 4, 32)));
	printf("map_dma without ioas %s\n", errname(map_dma(fd, buf, APERTURE_START, 4096, 3, 32)));
	printf("unmap_dma without ioas %s\n", errname(unmap_dma(fd, APERTURE_START, 4096, 0, &out)));
	printf("get_info argsz=15 %s\n", errname(call(fd, VFIO_IOMMU_GET_INFO, &(struct t_info){ .argsz = 15 })));
	printf("get_info without ioas %s\n", errname(call(fd, VFIO_IOMMU_GET_INFO, &(struct t_info){ .argsz = 24 })));

	printf("vfio_ioas get %s\n", errname(vfio_ioas(fd, 0, &id, 0)));
	id = 99;
	printf("vfio_ioas set 99 %s\n", errname(vfio_ioas(fd, 1, &id, 0)));
	uint32_t ioas = ioas_alloc(fd);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	printf("mock_domain %s\n", errname(call(fd, TEST_CMD, &md)));
	id = ioas;
	printf("vfio_ioas set reserved=1 %s\n", errname(vfio_ioas(fd, 1, &id, 1)));
	printf("vfio_ioas op 3 %s\n", errname(vfio_ioas(fd, 3, &id, 0)));
	printf("vfio_ioas set %s\n", errname(vfio_ioas(fd, 1, &id, 0)));
	id = 0;
	e = vfio_ioas(fd, 0, &id, 0);
	printf("vfio_ioas get %s id=%u\n", errname(e), id);
	e = value_call(fd, VFIO_CHECK_EXTENSION, 4, &ret);
	printf("check_extension DMA_CC with a mock domain %s ret=%d\n", errname(e), ret);

	e = value_call(fd, VFIO_SET_IOMMU, 1, &ret);
	printf("set_iommu TYPE1 %s\n", errname(e));
	struct t_option huge = { sizeof(huge), 1, 1, 0, ioas, 7 };
	e = call(fd, OPTION, &huge);
	printf("huge pages %s val=%llu\n", errname(e), (unsigned long long)huge.val64);

	get_info(fd, 16);
	get_info(fd, 24);
	get_info(fd, 40);
	get_info(fd, 56);
	get_info(fd, 72);

	printf("map_dma %s\n", errname(map_dma(fd, buf, APERTURE_START, 16384, 3, 32)));
	printf("check_refs(1) %s\n", errname(check_refs(fd, buf, 16384, 1)));
	e = unmap_dma(fd, APERTURE_START + 4096, 4096, 0, &out);
	printf("unmap_dma one page in the middle %s size=%llu\n", errname(e), (unsigned long long)out);
	printf("check_refs(0) of that page %s\n", errname(check_refs(fd, buf + 4096, 4096, 0)));
	printf("check_refs(1) of the rest %s\n", errname(check_refs(fd, buf + 8192, 8192, 1)));
	e = unmap_dma(fd, APERTURE_START + 4096, 4096, 0, &out);
	printf("unmap_dma empty %s size=%llu\n", errname(e), (unsigned long long)out);
	e = unmap_dma(fd, APERTURE_START, 4096, 1, &out);
	printf("unmap_dma dirty bitmap flag %s\n", errname(e));
	e = unmap_dma(fd, APERTURE_START, 4096, 2, &out);
	printf("unmap_dma ALL with a range %s size=%llu\n", errname(e), (unsigned long long)out);
	e = unmap_dma(fd, 0, 0, 2, &out);
	printf("unmap_dma ALL %s size=%llu\n", errname(e), (unsigned long long)out);
	printf("check_refs(0) after %s\n", errname(check_refs(fd, buf, 16384, 0)));
	e = value_call(fd, VFIO_IOMMU_DIRTY_PAGES, 0, &ret);
	printf("dirty pages %s\n", errname(e));

	printf("vfio_ioas clear %s\n", errname(vfio_ioas(fd, 2, &id, 0)));
	printf("vfio_ioas get after clear %s\n", errname(vfio_ioas(fd, 0, &id, 0)));
	return 0;
}
