// SPDX-License-Identifier: GPL-2.0-only
/*
 * Hardware page tables and fail-nth as v6.12 serves them: automatic domains shared by the mock devices of an
 * IOAS, IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, MOCK_DOMAIN on a hwpt, MOCK_DOMAIN_REPLACE; then the task's
 * fail-nth file and the debugfs knobs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sys/syscall.h>
#include "client.h"

#define HWPT_ALLOC REQ(0x89)
#define GET_HW_INFO REQ(0x8a)
#define OP_MOCK_DOMAIN_REPLACE 10
#define APERTURE_START (1ull << 24)

struct t_hwpt_alloc {
	uint32_t size, flags, dev_id, pt_id, out_hwpt_id, reserved, data_type, data_len;
	uint64_t data_uptr;
	uint32_t fault_id, reserved2;
};
struct t_hw_info {
	uint32_t size, flags, dev_id, data_len;
	uint64_t data_uptr;
	uint32_t out_data_type;
	uint8_t out_max_pasid_log2, reserved[3];
	uint64_t out_capabilities;
};

static int fd;

static void mock_domain(uint32_t pt)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_MOCK_DOMAIN, .id = pt };
	int e = call(fd, TEST_CMD, &c);
	printf("mock_domain on %u %s stdev=%u idev=%u hwpt=%u\n", pt, errname(e), c.mock_domain.out_stdev_id,
	       c.mock_domain.out_idev_id, c.mock_domain.out_hwpt_id);
}

static void hwpt_alloc(const char *what, uint32_t dev, uint32_t pt, uint32_t flags, uint32_t reserved,
		       uint32_t data_len)
{
	struct t_hwpt_alloc a = { .size = sizeof(a), .flags = flags, .dev_id = dev, .pt_id = pt };
	a.reserved = reserved;
	a.data_len = data_len;
	int e = call(fd, HWPT_ALLOC, &a);
	printf("hwpt_alloc %s %s id=%u\n", what, errname(e), a.out_hwpt_id);
}

static void replace(uint32_t stdev, uint32_t pt)
{
	struct t_test_cmd c = { .size = sizeof(c), .op = OP_MOCK_DOMAIN_REPLACE, .id = stdev };
	c.access_replace_ioas.ioas_id = pt; /* the union's first u32: mock_domain_replace.pt_id */
	int e = call(fd, TEST_CMD, &c);
	printf("replace %u to %u %s pt=%u\n", stdev, pt, errname(e), c.access_replace_ioas.ioas_id);
}

static void destroy(uint32_t id)
{
	struct t_destroy d = { sizeof(d), id };
	printf("destroy %u %s\n", id, errname(call(fd, DESTROY, &d)));
}

static void hw_info(const char *what, uint32_t size, uint32_t flags, uint32_t dev)
{
	uint8_t data[16];
	struct t_hw_info h = { .size = size, .flags = flags, .dev_id = dev, .data_len = sizeof(data) };
	memset(data, 0xff, sizeof(data));
	h.data_uptr = (uintptr_t)data;
	h.out_capabilities = 0x77;
	int e = call(fd, GET_HW_INFO, &h);
	printf("hw_info %s %s len=%u type=%#x caps=%#llx pasid=%u data=", what, errname(e), h.data_len,
	       h.out_data_type, (unsigned long long)h.out_capabilities, h.out_max_pasid_log2);
	for (unsigned int i = 0; i < sizeof(data); i++)
		printf("%02x", data[i]);
	printf("\n");
}

static int failnth;

static void nth_write(const char *v)
{
	ssize_t n = pwrite(failnth, v, strlen(v), 0);
	printf("fail-nth write %s: %zd %s\n", v, n, n < 0 ? errname(errno) : "ok");
}

static void nth_read(void)
{
	char buf[16] = { 0 };
	ssize_t n = pread(failnth, buf, sizeof(buf) - 1, 0);
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	printf("fail-nth read: %zd %s\n", n, n < 0 ? errname(errno) : buf);
}

int main(void)
{
	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0)
		return 1;
	uint32_t ioas = ioas_alloc(fd);
	char *buf = pages(8192);
	struct t_map m = { sizeof(m), MAP_FIXED_IOVA | MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, 8192,
			   APERTURE_START };
	printf("map %s\n", errname(call(fd, IOAS_MAP, &m)));

	/* Two devices on the IOAS share its automatic domain. */
	mock_domain(ioas);
	mock_domain(ioas);
	printf("refs 1 %s\n", errname(check_refs(fd, buf, 8192, 1)));

	hw_info("idev", sizeof(struct t_hw_info), 0, 3);
	hw_info("size 32", 32, 0, 3);
	hw_info("flags=1", sizeof(struct t_hw_info), 1, 3);
	hw_info("on the ioas", sizeof(struct t_hw_info), 0, ioas);

	hwpt_alloc("paging", 3, ioas, 0, 0, 0);
	hwpt_alloc("reserved=1", 3, ioas, 0, 1, 0);
	hwpt_alloc("pt 99", 3, 99, 0, 0, 0);
	hwpt_alloc("dev is the ioas", ioas, ioas, 0, 0, 0);
	hwpt_alloc("FAULT_ID_VALID", 3, ioas, 1u << 2, 0, 0);
	hwpt_alloc("data_len without type", 3, ioas, 0, 0, 4);
	hwpt_alloc("NEST_PARENT", 3, ioas, 1u << 0, 0, 0);

	destroy(4); /* the automatic hwpt: two devices hold it */
	destroy(7);
	hwpt_alloc("again", 3, ioas, 0, 0, 0);
	replace(2, 7);
	destroy(7);
	replace(5, 7);
	destroy(4); /* its last device left: gone */
	replace(2, ioas); /* a new automatic hwpt, at the lowest free id */
	replace(99, ioas);
	replace(2, 3);
	replace(2, 98);
	mock_domain(8);
	struct t_test_cmd cm = { .size = sizeof(cm), .op = OP_MD_CHECK_MAP, .id = 8 };
	cm.check_map.iova = APERTURE_START;
	cm.check_map.length = 8192;
	cm.check_map.uptr = (uintptr_t)buf;
	printf("check_map hwpt 8 %s\n", errname(call(fd, TEST_CMD, &cm)));
	destroy(9);
	destroy(8);
	printf("refs 1 %s\n", errname(check_refs(fd, buf, 8192, 1)));

	/* fail-nth: the task's counter, counted off at the sites this ioctl reaches. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth", (long)syscall(SYS_gettid));
	failnth = open(path, O_RDWR);
	printf("fail-nth open %s\n", failnth < 0 ? "failed" : "ok");
	nth_read();
	nth_write("1"); /* copy_struct_from_user */
	ioas_alloc(fd);
	nth_read();
	nth_write("2"); /* the IOAS object */
	ioas_alloc(fd);
	nth_write("100");
	ioas_alloc(fd);
	nth_read();
	nth_write("0");
	nth_write("1"); /* the read's own copy_to_user */
	nth_read();
	nth_read();
	nth_write("x");
	close(failnth);

	DIR *debugfs = opendir("/sys/kernel/debug/");
	printf("debugfs %s\n", debugfs ? "ok" : "missing");
	if (debugfs) {
		int knob = openat(dirfd(debugfs), "failslab/ignore-gfp-wait", O_RDWR);
		char v[8] = { 0 };
		printf("ignore-gfp-wait write %zd\n", write(knob, "N", 1));
		ssize_t n = pread(knob, v, sizeof(v) - 1, 0);
		printf("ignore-gfp-wait read %zd %c\n", n, v[0]);
		close(knob);
		closedir(debugfs);
	}
	return close(fd) ? 2 : 0;
}
