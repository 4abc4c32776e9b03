// SPDX-License-Identifier: GPL-2.0-only
/*
 * The MM-mode accounting finding of issue 14, as a program for the real kernel (CONFIG_IOMMUFD_TEST):
 * a child maps its own memory into an IOAS that has a mock domain, then exits; the parent then
 * destroys that domain's device and attaches a fresh mock domain, which has to read the pages again
 * from the dead child's address space.
 *
 *   mm-exit-reattach mm     accounting charged to the mm (IOMMU_OPTION_RLIMIT_MODE = 1)
 *   mm-exit-reattach user   accounting charged to the user (the default)
 *
 * Each step prints one JSON line. Only the uAPI is used; the layouts below are written for this program
 * from the 6.12 uAPI and the selftest command's documented fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* iommufd ioctls carry no size in their number: type ';' and command 0x80 + n. */
#define IOMMUFD_IOCTL(n) ((0x3bu << 8) | (0x80u + (n)))
#define IOCTL_DESTROY IOMMUFD_IOCTL(0)
#define IOCTL_IOAS_ALLOC IOMMUFD_IOCTL(1)
#define IOCTL_IOAS_MAP IOMMUFD_IOCTL(5)
#define IOCTL_OPTION IOMMUFD_IOCTL(7)
#define IOCTL_TEST_CMD IOMMUFD_IOCTL(32)

struct gt_destroy {
	uint32_t size;
	uint32_t id;
};

struct gt_ioas_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_ioas_id;
};

#define GT_MAP_FIXED_IOVA 1u
#define GT_MAP_WRITEABLE 2u
#define GT_MAP_READABLE 4u

struct gt_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t reserved;
	uint64_t user_va;
	uint64_t length;
	uint64_t iova;
};

#define GT_OPTION_RLIMIT_MODE 0
#define GT_OPTION_SET 0

struct gt_option {
	uint32_t size;
	uint32_t option_id;
	uint16_t op;
	uint16_t reserved;
	uint32_t object_id;
	uint64_t val64;
};

/* The selftest command: a 16-byte head, a 48-byte union of per-op arguments, then `last`. */
#define GT_TEST_OP_MOCK_DOMAIN 2

struct gt_test_cmd {
	uint32_t size;
	uint32_t op;
	uint32_t id;
	uint32_t reserved;
	union {
		struct {
			uint32_t out_stdev_id;
			uint32_t out_hwpt_id;
			uint32_t out_idev_id;
		} mock_domain;
		uint8_t args[48];
	} u;
	uint32_t last;
	uint32_t tail_pad;
};

_Static_assert(sizeof(struct gt_ioas_map) == 40, "iommu_ioas_map is 40 bytes");
_Static_assert(sizeof(struct gt_option) == 24, "iommu_option is 24 bytes");
_Static_assert(__builtin_offsetof(struct gt_test_cmd, last) == 64, "iommu_test_cmd.last is at 64");

static void report(const char *step, int rc, const char *extra)
{
	int err = rc < 0 ? errno : 0;

	printf("{\"step\":\"%s\",\"rc\":%d,\"errno\":%d,\"error\":\"%s\"%s%s}\n", step, rc < 0 ? -1 : rc, err,
	       err ? strerror(err) : "", extra[0] ? "," : "", extra);
	fflush(stdout);
}

/* As root, iommufd would choose no accounting at all; drop CAP_IPC_LOCK from every set. */
static int drop_ipc_lock(void)
{
	struct {
		uint32_t version;
		int pid;
	} head = { 0x20080522 /* capability ABI v3 */, 0 };
	struct {
		uint32_t effective, permitted, inheritable;
	} sets[2];
	const int cap_ipc_lock = 14;

	if (syscall(SYS_capget, &head, sets))
		return -1;
	sets[0].effective &= ~(1u << cap_ipc_lock);
	sets[0].permitted &= ~(1u << cap_ipc_lock);
	sets[0].inheritable &= ~(1u << cap_ipc_lock);
	return (int)syscall(SYS_capset, &head, sets);
}

static int mock_domain(int fd, uint32_t ioas, uint32_t *stdev)
{
	struct gt_test_cmd cmd;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.size = sizeof(cmd);
	cmd.op = GT_TEST_OP_MOCK_DOMAIN;
	cmd.id = ioas;
	rc = ioctl(fd, IOCTL_TEST_CMD, &cmd);
	if (!rc)
		*stdev = cmd.u.mock_domain.out_stdev_id;
	return rc;
}

int main(int argc, char **argv)
{
	const int mm_mode = argc > 1 && !strcmp(argv[1], "mm");
	const size_t length = 16 * 4096;
	const uint64_t iova = 1u << 24; /* the mock domain's aperture starts at 16 MiB */
	struct gt_ioas_alloc alloc = { .size = sizeof(alloc) };
	char extra[96];
	uint32_t stdev = 0, stdev2 = 0;
	int fd, rc, status;
	pid_t child;

	report("drop_cap_ipc_lock", drop_ipc_lock(), "");
	fd = open("/dev/iommu", O_RDWR);
	report("open", fd, "");
	if (fd < 0)
		return 1;
	if (mm_mode) {
		struct gt_option opt = { .size = sizeof(opt),
					 .option_id = GT_OPTION_RLIMIT_MODE,
					 .op = GT_OPTION_SET,
					 .val64 = 1 };
		report("option_rlimit_mode_mm", ioctl(fd, IOCTL_OPTION, &opt), "");
	}
	rc = ioctl(fd, IOCTL_IOAS_ALLOC, &alloc);
	snprintf(extra, sizeof(extra), "\"ioas\":%u", alloc.out_ioas_id);
	report("ioas_alloc", rc, extra);
	rc = mock_domain(fd, alloc.out_ioas_id, &stdev);
	snprintf(extra, sizeof(extra), "\"stdev\":%u", stdev);
	report("mock_domain", rc, extra);

	child = fork();
	if (child == 0) {
		void *buf = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct gt_ioas_map map = { .size = sizeof(map),
					   .flags = GT_MAP_FIXED_IOVA | GT_MAP_READABLE | GT_MAP_WRITEABLE,
					   .ioas_id = alloc.out_ioas_id,
					   .user_va = (uintptr_t)buf,
					   .length = length,
					   .iova = iova };

		memset(buf, 0x5a, length);
		report("child_ioas_map", ioctl(fd, IOCTL_IOAS_MAP, &map), "");
		_exit(0);
	}
	waitpid(child, &status, 0);
	snprintf(extra, sizeof(extra), "\"status\":%d", status);
	report("child_exit", 0, extra);

	{
		struct gt_destroy d = { .size = sizeof(d), .id = stdev };

		report("destroy_mock_domain", ioctl(fd, IOCTL_DESTROY, &d), "");
	}
	rc = mock_domain(fd, alloc.out_ioas_id, &stdev2);
	snprintf(extra, sizeof(extra), "\"stdev\":%u", stdev2);
	report("attach_new_mock_domain", rc, extra);
	close(fd);
	report("close", 0, "");
	return 0;
}
