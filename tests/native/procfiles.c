// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the kernel shows a process about its pins: VmPin and VmLck of its status file, read with fopen
 * (/proc/self/status, /proc/PID/task/TID/status) and with open + read (/proc/PID/status,
 * /proc/thread-self/status), before, while and after four pages are pinned by a mock domain. On /dev/iommu (USER accounting: user->locked_vm, not shown
 * in status; none at all with CAP_IPC_LOCK) and on /dev/vfio/vfio (MM accounting: mm->locked_vm); VmPin
 * (mm->pinned_vm) moves in every mode. The cases without CAP_IPC_LOCK run in a child that dropped it from
 * its effective and permitted sets before its first iommufd call.
 */
#include "client.h"
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* The kB of line `name` in a status text, or -1 when it has none. */
static long field_kb(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			return strtol(line + n + 1, NULL, 10);
	}
	return -1;
}

/* The whole of `path` through open + read, NUL-terminated. */
static void read_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return;
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
}

/* The whole of `path` through fopen + fgets, NUL-terminated. */
static void fread_file(const char *path, char *buf, size_t size)
{
	char line[512];
	size_t len = 0;
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && len + strlen(line) < size) {
		memcpy(buf + len, line, strlen(line) + 1);
		len += strlen(line);
	}
	fclose(f);
}

static void show(const char *label, const char *when)
{
	static char a[16384], b[16384], c[16384], d[16384];
	char pid_path[64], task_path[96];

	snprintf(pid_path, sizeof(pid_path), "/proc/%d/status", (int)getpid());
	snprintf(task_path, sizeof(task_path), "/proc/%d/task/%d/status", (int)getpid(), (int)syscall(SYS_gettid));
	fread_file("/proc/self/status", a, sizeof(a));
	read_file(pid_path, b, sizeof(b));
	read_file("/proc/thread-self/status", c, sizeof(c));
	fread_file(task_path, d, sizeof(d));
	printf("%s %s: VmPin fopen=%ld read=%ld thread=%ld task=%ld kB, VmLck fopen=%ld read=%ld thread=%ld task=%ld kB\n",
	       label, when, field_kb(a, "VmPin"), field_kb(b, "VmPin"), field_kb(c, "VmPin"), field_kb(d, "VmPin"),
	       field_kb(a, "VmLck"), field_kb(b, "VmLck"), field_kb(c, "VmLck"), field_kb(d, "VmLck"));
}

/* Pin four pages of this process through a mock domain on `dev`, and unpin them. */
static int exercise(const char *dev, const char *label)
{
	int fd = open(dev, O_RDWR);
	if (fd < 0) {
		printf("%s open %s\n", label, errname(errno));
		return 1;
	}
	struct t_ioas_alloc a = { sizeof(a), 0, 0 };
	int e = call(fd, IOAS_ALLOC, &a);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = a.out_ioas_id };
	int e2 = call(fd, TEST_CMD, &md);
	printf("%s ioas_alloc %s mock_domain %s\n", label, errname(e), errname(e2));

	size_t len = 4 * 4096;
	char *buf = pages(len);
	show(label, "before map");
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, a.out_ioas_id, 0, (uintptr_t)buf, len, 0 };
	printf("%s map %s\n", label, errname(call(fd, IOAS_MAP, &m)));
	show(label, "mapped");
	struct t_unmap u = { sizeof(u), a.out_ioas_id, m.iova, len };
	printf("%s unmap %s\n", label, errname(call(fd, IOAS_UNMAP, &u)));
	show(label, "unmapped");
	close(fd);
	munmap(buf, len);
	return 0;
}

/* Drop CAP_IPC_LOCK from the effective, permitted and inheritable sets (no libcap: the raw syscalls). */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	const unsigned int word = CAP_IPC_LOCK / 32, bit = 1u << (CAP_IPC_LOCK % 32);

	if (syscall(SYS_capget, &head, data))
		return -1;
	data[word].effective &= ~bit;
	data[word].permitted &= ~bit;
	data[word].inheritable &= ~bit;
	return (int)syscall(SYS_capset, &head, data);
}

int main(void)
{
	int status;
	pid_t child;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (exercise("/dev/iommu", "iommu cap") || exercise("/dev/vfio/vfio", "vfio cap"))
		return 1;
	fflush(stdout);
	child = fork();
	if (child == 0) {
		if (drop_ipc_lock()) {
			printf("capset %s\n", errname(errno));
			_exit(1);
		}
		_exit(exercise("/dev/iommu", "iommu nocap") || exercise("/dev/vfio/vfio", "vfio nocap"));
	}
	if (child < 0 || waitpid(child, &status, 0) != child)
		return 1;
	printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
