// SPDX-License-Identifier: GPL-2.0-only
/* IOAS_ALLOC, MOCK_DOMAIN, MAP, MD_CHECK_MAP, MD_CHECK_REFS, COPY, UNMAP, DESTROY, end to end. */
#include "client.h"

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) {
		printf("open %s\n", errname(errno));
		return 1;
	}
	uint32_t ioas = ioas_alloc(fd);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	int e = call(fd, TEST_CMD, &md);
	printf("mock_domain %s stdev=%u hwpt=%u idev=%u\n", errname(e), md.mock_domain.out_stdev_id,
	       md.mock_domain.out_hwpt_id, md.mock_domain.out_idev_id);

	size_t len = 4 * 4096;
	char *buf = pages(len);
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, len, 0 };
	e = call(fd, IOAS_MAP, &m);
	printf("map %s iova=0x%llx\n", errname(e), (unsigned long long)m.iova);

	struct t_test_cmd cm = { .size = sizeof(cm), .op = OP_MD_CHECK_MAP, .id = md.mock_domain.out_hwpt_id };
	cm.check_map.iova = m.iova;
	cm.check_map.length = len;
	cm.check_map.uptr = (uintptr_t)buf;
	printf("check_map %s\n", errname(call(fd, TEST_CMD, &cm)));
	printf("check_refs(1) %s\n", errname(check_refs(fd, buf, len, 1)));
	printf("check_refs(0) %s\n", errname(check_refs(fd, buf, len, 0)));

	uint32_t ioas2 = ioas_alloc(fd);
	struct t_copy c = { sizeof(c), MAP_READABLE | MAP_WRITEABLE, ioas2, ioas, len, 0, m.iova };
	e = call(fd, IOAS_COPY, &c);
	printf("copy %s dst_iova=0x%llx\n", errname(e), (unsigned long long)c.dst_iova);
	printf("check_refs(1) after copy %s\n", errname(check_refs(fd, buf, len, 1)));

	struct t_unmap u = { sizeof(u), ioas, m.iova, len };
	e = call(fd, IOAS_UNMAP, &u);
	printf("unmap %s length=%llu\n", errname(e), (unsigned long long)u.length);
	printf("unmap again %s\n", errname(call(fd, IOAS_UNMAP, &u)));
	printf("check_refs(0) after unmap %s\n", errname(check_refs(fd, buf, len, 0)));

	struct t_destroy d = { sizeof(d), ioas };
	printf("destroy ioas with device %s\n", errname(call(fd, DESTROY, &d)));
	d.id = md.mock_domain.out_hwpt_id;
	printf("destroy hwpt %s\n", errname(call(fd, DESTROY, &d)));
	d.id = md.mock_domain.out_stdev_id;
	printf("destroy stdev %s\n", errname(call(fd, DESTROY, &d)));
	d.id = ioas;
	printf("destroy ioas %s\n", errname(call(fd, DESTROY, &d)));
	printf("destroy ioas again %s\n", errname(call(fd, DESTROY, &d)));
	u.ioas_id = ioas2;
	u.iova = 0;
	u.length = UINT64_MAX;
	e = call(fd, IOAS_UNMAP, &u);
	printf("unmap all of ioas2 %s length=%llu\n", errname(e), (unsigned long long)u.length);
	printf("ioas id reused: ");
	ioas_alloc(fd);
	close(fd);
	return 7;
}
