// SPDX-License-Identifier: GPL-2.0-only
/*
 * libioptrace-preload.so: serves /dev/iommu (and /dev/vfio/vfio) from a running `ioptrace run`.
 *
 * An open of the device becomes a Unix socket connected to the server (IOPTRACE_SOCK). That socket is the
 * descriptor the program gets: a real file, so close, dup, fcntl(F_DUPFD), inheritance by fork and release
 * at exit are the kernel's own, and the server learns of the last close as end-of-file on its side, as the
 * kernel learns of it in iommufd_fops_release. None of those calls needs intercepting.
 *
 * ioctls on such a socket go over a second, per-process control socket, so that a parent and a child
 * sharing one context never interleave their requests. The control socket is re-opened whenever getpid()
 * changes: that notices a fork however it was made (fork, vfork, raw clone), not only through atfork.
 *
 * Fault injection is emulated too (iommufd_fail_nth.c drives it): an open of this process's
 * /proc/PID/task/TID/fail-nth (or /proc/thread-self/fail-nth) gives a descriptor of /dev/null whose reads and
 * writes go to the server, which keeps the task's counter and counts it off at the model's fault points;
 * /sys/kernel/debug (opendir, or an absolute path under it) is the run's directory of fault attribute
 * knobs, IOPTRACE_DEBUGFS. A dup of a fail-nth descriptor is not followed (its reads reach /dev/null).
 *
 * What the kernel shows a process about iommufd's pins is emulated too (run mode only): a read-only open
 * (or fopen) of /proc/meminfo, or of the status file of a process of the run (/proc/self/status,
 * /proc/thread-self/status, /proc/PID/status, /proc/PID/task/TID/status), gives a descriptor of a memfd
 * holding the text the server composed: the real file with VmLck, VmPin or HugePages_Free as the model's
 * pins make them (src/server/proc-files.ts). The text is taken at open, as a seq_file takes it at the first
 * read; reads, fstat and close are the memfd's own.
 *
 * Record mode (`ioptrace record`, IOPTRACE_RECORD_SOCK set): the calls go to the kernel, the real
 * /dev/iommu, or, when IOPTRACE_RECORD_KERNEL_SOCKET names the socket of a running `ioptrace run`, to that
 * emulator standing in for it (served as above). Each open of the device and each ioctl on a descriptor
 * it returned is reported to the recorder over a per-process record socket: the ioctl once before the
 * kernel sees it (the recorder reads the arguments) and once after (the kernel's answer, and the outputs
 * it wrote). The recorder knows a context by the descriptor the open returned, in this process image and
 * its forks: an ioctl through a dup of it, or after exec, reaches the kernel unrecorded (the recorder
 * counts it). A process's ioctls are recorded one at a time, in the order the kernel served them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"

#define IOMMUFD_IOCTL_TYPE ';'
#define MAX_OWN_INODES 4096

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static int ctl_fd = -1;
static pid_t ctl_pid;

/* Inodes of the context sockets this process image opened; after exec the ioctl type identifies them. */
static uint64_t own_inodes[MAX_OWN_INODES];
static unsigned int own_count;

/*
 * Whether this process image has iommufd state in the server: it opened a context or access file, holds
 * one from its parent (fork copies own_inodes), or had an ioctl served. Only then are dropped ranges told.
 */
static int served_image;

static int (*real_ioctl_fn)(int, unsigned long, ...);

/* Descriptors of emulated fail-nth files: the task each belongs to (0: none) and its read position. */
#define MAX_FAILNTH_FD 1024
static pid_t failnth_task[MAX_FAILNTH_FD];
static off_t failnth_pos[MAX_FAILNTH_FD];

/* The library's own closes: through the syscall, so that they do not come back into close() below. */
static int sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

/* Record mode's recorder, or NULL when the library serves `ioptrace run`. */
static const char *record_path(void)
{
	const char *path = getenv("IOPTRACE_RECORD_SOCK");
	return path && *path ? path : NULL;
}

/*
 * The model serving /dev/iommu: `ioptrace run`'s, or in record mode the emulator standing in for the kernel.
 * Looked up once per process image: every ioctl asks, and the environment the image started with names it
 * (a program that later edits its environment does not move the run's socket).
 */
static const char *server_path(void)
{
	static const char *cached;
	static int looked_up;

	if (!__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
		const char *path = getenv(record_path() ? "IOPTRACE_RECORD_KERNEL_SOCKET" : "IOPTRACE_SOCK");

		cached = path && *path ? path : NULL;
		__atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
	}
	return cached;
}

/*
 * The address-space generation of this process (protocol.h, mm_gen): counted up after every call through
 * the library that may change the mappings, so that the server re-reads /proc/PID/maps only when one was
 * made, instead of at every ioctl. A child made by fork starts from its parent's count under a new pid, an
 * exec'd image from 1 on a new control connection: the server keys what it kept by both.
 */
static uint64_t mm_generation = 1;

static void address_space_changed(void)
{
	__atomic_add_fetch(&mm_generation, 1, __ATOMIC_SEQ_CST);
}

static uint64_t address_space_generation(void)
{
	return __atomic_load_n(&mm_generation, __ATOMIC_SEQ_CST);
}

static int device_of(const char *path)
{
	if (!path)
		return -1;
	if (strcmp(path, "/dev/iommu") == 0)
		return IOPTRACE_DEV_IOMMU;
	if (strcmp(path, "/dev/vfio/vfio") == 0)
		return IOPTRACE_DEV_VFIO;
	return -1;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int connect_to(const char *path, int cloexec)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (!path || strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENOENT;
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int saved = errno;
		sys_close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int connect_server(int cloexec)
{
	return connect_to(server_path(), cloexec);
}

static void remember_inode(uint64_t ino)
{
	if (own_count < MAX_OWN_INODES)
		own_inodes[own_count++] = ino;
}

static int is_own_inode(uint64_t ino)
{
	for (unsigned int i = 0; i < own_count; i++)
		if (own_inodes[i] == ino)
			return 1;
	return 0;
}

/* The open of the device: a socket that the server registers as a new iommufd context. */
static int open_device(int device, int flags)
{
	int saved_errno = errno;
	struct ioptrace_request req = { 0 };
	struct ioptrace_reply reply;
	struct stat st;
	int fd = connect_server(flags & O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	req.kind = IOPTRACE_REQ_OPEN;
	req.pid = (uint32_t)getpid();
	req.tid = (uint32_t)syscall(SYS_gettid);
	req.aux = (uint32_t)device;
	req.ino = (uint64_t)st.st_ino;
	if (write_all(fd, &req, sizeof(req)) || read_all(fd, &reply, sizeof(reply)))
		goto fail;
	if (reply.err) {
		sys_close(fd);
		errno = reply.err;
		return -1;
	}
	pthread_mutex_lock(&ctl_lock);
	remember_inode(req.ino);
	pthread_mutex_unlock(&ctl_lock);
	errno = saved_errno;
	return fd;
fail:
	sys_close(fd);
	errno = EIO;
	return -1;
}

/*
 * A selftest access file: a close-on-exec socket registered with the server, whose last close the server
 * sees as end-of-file and answers as the kernel's release of the access file.
 */
static int open_access_file(void)
{
	struct ioptrace_request req = { 0 };
	struct ioptrace_reply reply;
	struct stat st;
	int fd = connect_server(1);

	if (fd < 0)
		return -1;
	req.kind = IOPTRACE_REQ_OPEN;
	req.pid = (uint32_t)getpid();
	req.tid = (uint32_t)syscall(SYS_gettid);
	req.aux = IOPTRACE_DEV_ACCESS;
	if (fstat(fd, &st) < 0)
		goto fail;
	req.ino = (uint64_t)st.st_ino;
	if (write_all(fd, &req, sizeof(req)) || read_all(fd, &reply, sizeof(reply)) || reply.err)
		goto fail;
	remember_inode(req.ino);
	return fd;
fail:
	sys_close(fd);
	return -1;
}

/* The control socket of this process; an inherited one belongs to the parent and is dropped. */
static int control_socket(void)
{
	pid_t pid = getpid();

	if (ctl_fd >= 0 && ctl_pid == pid)
		return ctl_fd;
	if (ctl_fd >= 0)
		sys_close(ctl_fd);
	ctl_fd = connect_server(1);
	ctl_pid = pid;
	return ctl_fd;
}

/* Forward one ioctl; returns 1 and sets *ret when the server served it, 0 when it is not ours. */
static int forward_ioctl(int fd, unsigned long request, void *arg, int *ret)
{
	struct ioptrace_request req = { 0 };
	struct ioptrace_reply reply;
	struct stat st;
	int ctl;

	if (!server_path() || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	pthread_mutex_lock(&ctl_lock);
	if (!is_own_inode((uint64_t)st.st_ino) && _IOC_TYPE(request) != IOMMUFD_IOCTL_TYPE) {
		pthread_mutex_unlock(&ctl_lock);
		return 0;
	}
	ctl = control_socket();
	if (ctl < 0) {
		pthread_mutex_unlock(&ctl_lock);
		return 0;
	}
	req.kind = IOPTRACE_REQ_IOCTL;
	req.mm_gen = address_space_generation();
	req.pid = (uint32_t)ctl_pid;
	req.tid = (uint32_t)syscall(SYS_gettid);
	req.ino = (uint64_t)st.st_ino;
	req.request = (uint64_t)request;
	req.arg = (uint64_t)(uintptr_t)arg;
	if (write_all(ctl, &req, sizeof(req)) || read_all(ctl, &reply, sizeof(reply))) {
		sys_close(ctl);
		ctl_fd = -1;
		pthread_mutex_unlock(&ctl_lock);
		*ret = -1;
		errno = EIO;
		return 1;
	}
	if (reply.err == IOPTRACE_NEED_FD) {
		int access_fd = open_access_file();

		if (access_fd < 0) {
			pthread_mutex_unlock(&ctl_lock);
			*ret = -1;
			errno = ENOMEM;
			return 1;
		}
		req.aux = (uint32_t)access_fd + 1;
		if (write_all(ctl, &req, sizeof(req)) || read_all(ctl, &reply, sizeof(reply))) {
			sys_close(ctl);
			ctl_fd = -1;
			reply.err = EIO;
		}
		if (reply.err)
			sys_close(access_fd);
	}
	if (reply.err != IOPTRACE_NOT_OURS)
		served_image = 1;
	pthread_mutex_unlock(&ctl_lock);
	if (reply.err == IOPTRACE_NOT_OURS)
		return 0;
	if (reply.err) {
		errno = reply.err;
		*ret = -1;
	} else {
		*ret = reply.ret;
	}
	return 1;
}

/*
 * ---- calls that change the address space ----
 *
 * Each goes to the C library's own function and then counts the generation up (address_space_changed):
 * the next request tells the server that the mappings it read may be out of date. What the library does
 * not see: the C library's internal calls (malloc's mmap, munmap and brk) and raw syscalls. Those are
 * safe for what the server decides from the maps, see docs/architecture.md: a copy it refuses from
 * mappings it kept is checked again against freshly read ones, and an address that is gone fails in
 * /proc/PID/mem itself; only a permission taken away behind the library's back goes unseen.
 */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef void *(*mmap64_fn)(void *, size_t, int, int, int, off64_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);
typedef int (*munmap_fn)(void *, size_t);
typedef int (*mprotect_fn)(void *, size_t, int);
typedef int (*pkey_mprotect_fn)(void *, size_t, int, int);
typedef int (*madvise_fn)(void *, size_t, int);
typedef int (*brk_fn)(void *);
typedef void *(*sbrk_fn)(intptr_t);
typedef void *(*shmat_fn)(int, const void *, int);
typedef int (*shmdt_fn)(const void *);

/* The next definition of `name` after this library's, looked up once. */
#define NEXT(name, type)                                                   \
	({                                                                 \
		static type next_;                                         \
		if (!next_)                                                \
			next_ = (type)dlsym(RTLD_NEXT, name);              \
		next_;                                                     \
	})

/*
 * [addr, addr + length) no longer holds the pages it held (munmap, mremap's old place, MADV_DONTNEED, a
 * MAP_FIXED mapping over it): told to the server before the call returns, so that the model drops the
 * memory it had declared there before the next ioctl is served (IOPTRACE_REQ_DROPPED).
 */
static void address_space_dropped(const void *addr, size_t length, uint32_t why)
{
	struct ioptrace_request req = { 0 };
	struct ioptrace_reply reply;
	int saved = errno;
	int ctl;

	if (!length || record_path() || !server_path())
		return;
	pthread_mutex_lock(&ctl_lock);
	if (!own_count && !served_image) {
		pthread_mutex_unlock(&ctl_lock);
		return;
	}
	ctl = control_socket();
	if (ctl >= 0) {
		req.kind = IOPTRACE_REQ_DROPPED;
		req.pid = (uint32_t)ctl_pid;
		req.tid = (uint32_t)syscall(SYS_gettid);
		req.aux = why;
		req.ino = (uint64_t)(uintptr_t)addr;
		req.arg = (uint64_t)length;
		req.mm_gen = address_space_generation();
		if (write_all(ctl, &req, sizeof(req)) || read_all(ctl, &reply, sizeof(reply))) {
			sys_close(ctl);
			ctl_fd = -1;
		}
	}
	pthread_mutex_unlock(&ctl_lock);
	errno = saved;
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	void *ret = NEXT("mmap", mmap_fn)(addr, length, prot, flags, fd, offset);
	address_space_changed();
	if (ret != MAP_FAILED && (flags & MAP_FIXED))
		address_space_dropped(ret, length, IOPTRACE_DROPPED_FIXED);
	return ret;
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off64_t offset)
{
	void *ret = NEXT("mmap64", mmap64_fn)(addr, length, prot, flags, fd, offset);
	address_space_changed();
	if (ret != MAP_FAILED && (flags & MAP_FIXED))
		address_space_dropped(ret, length, IOPTRACE_DROPPED_FIXED);
	return ret;
}

int munmap(void *addr, size_t length)
{
	int ret = NEXT("munmap", munmap_fn)(addr, length);
	address_space_changed();
	if (ret == 0)
		address_space_dropped(addr, length, IOPTRACE_DROPPED_MUNMAP);
	return ret;
}

void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, ...)
{
	void *new_address = NULL;
	void *ret;
	va_list ap;

	/* The fifth argument exists only with MREMAP_FIXED (MREMAP_DONTUNMAP requires MAYMOVE, not it). */
	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_address = va_arg(ap, void *);
		va_end(ap);
	}
	ret = NEXT("mremap", mremap_fn)(old_address, old_size, new_size, flags, new_address);
	address_space_changed();
	if (ret == MAP_FAILED)
		return ret;
	/* Moved: the old place is empty (MREMAP_DONTUNMAP leaves it mapped, but with its pages gone). */
	/* Reading chosen: the new place is declared afresh, though the kernel moved the same pages there. */
	if (ret != old_address)
		address_space_dropped(old_address, old_size, IOPTRACE_DROPPED_MREMAP);
	else if (new_size < old_size)
		address_space_dropped((const char *)old_address + new_size, old_size - new_size, IOPTRACE_DROPPED_MREMAP);
	if (ret != old_address && (flags & MREMAP_FIXED))
		address_space_dropped(ret, new_size, IOPTRACE_DROPPED_FIXED);
	return ret;
}

int mprotect(void *addr, size_t length, int prot)
{
	int ret = NEXT("mprotect", mprotect_fn)(addr, length, prot);
	address_space_changed();
	return ret;
}

int pkey_mprotect(void *addr, size_t length, int prot, int pkey)
{
	int ret = NEXT("pkey_mprotect", pkey_mprotect_fn)(addr, length, prot, pkey);
	address_space_changed();
	return ret;
}

int madvise(void *addr, size_t length, int advice)
{
	int ret = NEXT("madvise", madvise_fn)(addr, length, advice);
	address_space_changed();
	/* The pages are zapped: private memory reads zeroes (fresh pages) from now on; the server decides by VMA. */
	if (ret == 0 && (advice == MADV_DONTNEED || advice == 24 /* MADV_DONTNEED_LOCKED */ || advice == MADV_REMOVE))
		address_space_dropped(addr, length, IOPTRACE_DROPPED_DONTNEED);
	return ret;
}

int brk(void *addr)
{
	int ret = NEXT("brk", brk_fn)(addr);
	address_space_changed();
	return ret;
}

void *sbrk(intptr_t increment)
{
	void *ret = NEXT("sbrk", sbrk_fn)(increment);
	address_space_changed();
	return ret;
}

void *shmat(int shmid, const void *addr, int flags)
{
	void *ret = NEXT("shmat", shmat_fn)(shmid, addr, flags);
	address_space_changed();
	return ret;
}

int shmdt(const void *addr)
{
	int ret = NEXT("shmdt", shmdt_fn)(addr);
	address_space_changed();
	return ret;
}

/*
 * alarm() stretched by IOPTRACE_ALARM_SCALE (a whole factor, run mode only). `ioptrace kernel selftest`
 * sets it for the model's column: the kselftest harness arms alarm(30) around each test as a hang guard
 * sized for the kernel, and the model serves each ioctl tens of times slower than the kernel does, so a
 * long test would be killed for the model's speed, not for its answers. The VM's column is not stretched.
 */
typedef unsigned int (*alarm_fn)(unsigned int);

unsigned int alarm(unsigned int seconds)
{
	static unsigned long scale;
	static alarm_fn next;

	if (!next) {
		const char *text = getenv("IOPTRACE_ALARM_SCALE");
		unsigned long n = text && server_path() ? strtoul(text, NULL, 10) : 1;

		scale = n >= 1 && n <= 1000 ? n : 1;
		next = (alarm_fn)dlsym(RTLD_NEXT, "alarm");
	}
	if (seconds && scale > 1)
		seconds = seconds > UINT32_MAX / scale ? UINT32_MAX : (unsigned int)(seconds * scale);
	return next(seconds);
}

/* ---- record mode ---- */

#define MAX_RECORD_FD 4096
/* The recorder's number for the context behind each descriptor the device's open returned (0: none). */
static uint32_t record_ctx[MAX_RECORD_FD];
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static int rec_fd = -1;
static pid_t rec_pid;

/* One request to the recorder on this process's record socket (opened anew after fork); 0 on success. */
static int record_exchange(struct ioptrace_request *req, struct ioptrace_reply *reply)
{
	pid_t pid = getpid();

	if (rec_fd >= 0 && rec_pid != pid) {
		sys_close(rec_fd);
		rec_fd = -1;
	}
	if (rec_fd < 0) {
		rec_fd = connect_to(record_path(), 1);
		rec_pid = pid;
	}
	if (rec_fd < 0)
		return -1;
	req->pid = (uint32_t)pid;
	req->tid = (uint32_t)syscall(SYS_gettid);
	req->mm_gen = address_space_generation();
	if (write_all(rec_fd, req, sizeof(*req)) || read_all(rec_fd, reply, sizeof(*reply))) {
		sys_close(rec_fd);
		rec_fd = -1;
		return -1;
	}
	return 0;
}

/* The kernel opened the device as `fd`: the recorder opens a context of its own for it. */
static void record_opened(int fd, int device)
{
	struct ioptrace_request req = { .kind = IOPTRACE_REQ_RECORD_OPEN, .aux = (uint32_t)device };
	struct ioptrace_reply reply;
	int saved = errno;

	pthread_mutex_lock(&rec_lock);
	if (record_exchange(&req, &reply) == 0 && reply.err == 0 && fd < MAX_RECORD_FD)
		record_ctx[fd] = (uint32_t)reply.ret;
	pthread_mutex_unlock(&rec_lock);
	errno = saved;
}

/* Record mode's open of the device: the kernel's (or its stand-in's), then reported. */
static int record_open(int device, const char *path, int flags)
{
	int (*real_open)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	int fd = server_path() ? open_device(device, flags) : real_open(path, flags);

	if (fd >= 0)
		record_opened(fd, device);
	return fd;
}

static int kernel_ioctl(int fd, unsigned long request, void *arg)
{
	int ret;

	if (forward_ioctl(fd, request, arg, &ret))
		return ret;
	if (!real_ioctl_fn)
		real_ioctl_fn = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	return real_ioctl_fn(fd, request, arg);
}

/*
 * Record mode's ioctl: told to the recorder before the kernel sees it and after it answered. An iommufd
 * ioctl on a descriptor the recorder does not know is told too (ino 0), so that it is counted.
 */
static int record_ioctl(int fd, unsigned long request, void *arg)
{
	uint32_t ctx = fd >= 0 && fd < MAX_RECORD_FD ? record_ctx[fd] : 0;
	struct ioptrace_request req = { .kind = IOPTRACE_REQ_RECORD_CALL };
	struct ioptrace_reply reply;
	int recorded, ret, saved;

	if (!ctx && _IOC_TYPE(request) != IOMMUFD_IOCTL_TYPE)
		return kernel_ioctl(fd, request, arg);
	pthread_mutex_lock(&rec_lock);
	req.ino = ctx;
	req.request = (uint64_t)request;
	req.arg = (uint64_t)(uintptr_t)arg;
	recorded = record_exchange(&req, &reply) == 0 && reply.err != IOPTRACE_NOT_OURS;
	ret = kernel_ioctl(fd, request, arg);
	saved = errno;
	if (recorded) {
		req.kind = IOPTRACE_REQ_RECORD_DONE;
		req.request = (uint64_t)(int64_t)ret;
		req.aux = ret < 0 ? (uint32_t)saved : 0;
		record_exchange(&req, &reply);
	}
	pthread_mutex_unlock(&rec_lock);
	errno = saved;
	return ret;
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (record_path())
		return record_ioctl(fd, request, arg);
	if (forward_ioctl(fd, request, arg, &ret))
		return ret;
	if (!real_ioctl_fn)
		real_ioctl_fn = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	return real_ioctl_fn(fd, request, arg);
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

/* The task whose fail-nth file `path` is, when it is one of this process's; 0 otherwise. */
static pid_t failnth_target(const char *path)
{
	unsigned int pid, tid;
	char tail[16];

	if (!path || !server_path())
		return 0;
	if (strcmp(path, "/proc/thread-self/fail-nth") == 0)
		return (pid_t)syscall(SYS_gettid);
	if (sscanf(path, "/proc/self/task/%u/%15s", &tid, tail) == 2 && strcmp(tail, "fail-nth") == 0)
		return (pid_t)tid;
	if (sscanf(path, "/proc/%u/task/%u/%15s", &pid, &tid, tail) == 3 && strcmp(tail, "fail-nth") == 0 &&
	    (pid_t)pid == getpid())
		return (pid_t)tid;
	return 0;
}

static int open_failnth(pid_t task, int flags)
{
	int fd = REAL("open", int (*)(const char *, int, ...))("/dev/null", O_RDWR | (flags & O_CLOEXEC));

	if (fd < 0)
		return -1;
	if (fd >= MAX_FAILNTH_FD) {
		sys_close(fd);
		errno = EMFILE;
		return -1;
	}
	failnth_task[fd] = task;
	failnth_pos[fd] = 0;
	return fd;
}

/* A read or write of an emulated fail-nth file, served by the server; -1 with errno on failure. */
static ssize_t failnth_io(int fd, int write, void *buf, size_t count, off_t offset)
{
	struct ioptrace_request req = { 0 };
	struct ioptrace_reply reply;
	int ctl;

	pthread_mutex_lock(&ctl_lock);
	ctl = control_socket();
	if (ctl < 0) {
		pthread_mutex_unlock(&ctl_lock);
		errno = EIO;
		return -1;
	}
	req.kind = write ? IOPTRACE_REQ_FAILNTH_WRITE : IOPTRACE_REQ_FAILNTH_READ;
	req.mm_gen = address_space_generation();
	req.pid = (uint32_t)ctl_pid;
	req.tid = (uint32_t)syscall(SYS_gettid);
	req.aux = (uint32_t)failnth_task[fd];
	req.ino = (uint64_t)offset;
	/* Neither file operation looks at more than a few bytes. */
	req.request = count > 0xffff ? 0xffff : count;
	req.arg = (uint64_t)(uintptr_t)buf;
	if (write_all(ctl, &req, sizeof(req)) || read_all(ctl, &reply, sizeof(reply))) {
		sys_close(ctl);
		ctl_fd = -1;
		pthread_mutex_unlock(&ctl_lock);
		errno = EIO;
		return -1;
	}
	pthread_mutex_unlock(&ctl_lock);
	if (reply.err) {
		errno = reply.err;
		return -1;
	}
	return reply.ret;
}

static int is_failnth_fd(int fd)
{
	return fd >= 0 && fd < MAX_FAILNTH_FD && failnth_task[fd] != 0;
}

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

ssize_t read(int fd, void *buf, size_t count)
{
	if (is_failnth_fd(fd)) {
		ssize_t n = failnth_io(fd, 0, buf, count, failnth_pos[fd]);
		if (n > 0)
			failnth_pos[fd] += n;
		return n;
	}
	return REAL("read", read_fn)(fd, buf, count);
}

ssize_t write(int fd, const void *buf, size_t count)
{
	if (is_failnth_fd(fd))
		return failnth_io(fd, 1, (void *)buf, count, 0);
	return REAL("write", write_fn)(fd, buf, count);
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
	if (is_failnth_fd(fd))
		return failnth_io(fd, 0, buf, count, offset);
	return REAL("pread", pread_fn)(fd, buf, count, offset);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
{
	if (is_failnth_fd(fd))
		return failnth_io(fd, 0, buf, count, offset);
	return REAL("pread64", pread_fn)(fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	if (is_failnth_fd(fd))
		return failnth_io(fd, 1, (void *)buf, count, offset);
	return REAL("pwrite", pwrite_fn)(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
	if (is_failnth_fd(fd))
		return failnth_io(fd, 1, (void *)buf, count, offset);
	return REAL("pwrite64", pwrite_fn)(fd, buf, count, offset);
}

/* /sys/kernel/debug and what is under it, in the run's emulated debugfs; NULL when not redirected. */
static const char *debugfs_path(const char *path, char *out, size_t size)
{
	static const char root[] = "/sys/kernel/debug";
	const char *dir = getenv("IOPTRACE_DEBUGFS");

	if (!path || !dir || !*dir || !server_path() || strncmp(path, root, sizeof(root) - 1) != 0)
		return NULL;
	if (path[sizeof(root) - 1] != '\0' && path[sizeof(root) - 1] != '/')
		return NULL;
	if ((size_t)snprintf(out, size, "%s%s", dir, path + sizeof(root) - 1) >= size)
		return NULL;
	return out;
}

DIR *opendir(const char *path)
{
	char redirected[4096];
	const char *to = debugfs_path(path, redirected, sizeof(redirected));

	return REAL("opendir", DIR * (*)(const char *))(to ? to : path);
}

/* ---- emulated /proc files (run mode) ---- */

/* serve_procfile's answer for a path it does not emulate: the caller opens the real file. */
#define PROCFILE_PASS (-2)

/* A decimal number as /proc names a process: digits, no sign, no leading zero. Advances *p past it. */
static int proc_number(const char **p, unsigned int *out)
{
	unsigned long v = 0;
	const char *s = *p;

	if (*s < '1' || *s > '9')
		return 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 0xffffffffUL)
			return 0;
	}
	*out = (unsigned int)v;
	*p = s;
	return 1;
}

/* Which emulated file `path` is: 1 with *kind and *target (see IOPTRACE_REQ_PROC_FILE) set, or 0. */
static int procfile_of(const char *path, uint32_t *kind, uint64_t *target)
{
	const char *sock = getenv("IOPTRACE_SOCK");
	unsigned int pid = 0, tid = 0;
	const char *p;

	/* The kernel answers a recording; only `ioptrace run` stands in for it. */
	if (!path || !sock || !*sock || record_path() || strncmp(path, "/proc/", 6) != 0)
		return 0;
	p = path + 6;
	if (strcmp(p, "meminfo") == 0) {
		*kind = IOPTRACE_PROC_MEMINFO;
		*target = 0;
		return 1;
	}
	if (strcmp(p, "thread-self/status") == 0) {
		pid = (unsigned int)getpid();
		tid = (unsigned int)syscall(SYS_gettid);
		p = "/status";
	} else if (strncmp(p, "self/", 5) == 0) {
		pid = (unsigned int)getpid();
		p += 4;
	} else if (!proc_number(&p, &pid)) {
		return 0;
	}
	if (strncmp(p, "/task/", 6) == 0) {
		p += 6;
		if (!proc_number(&p, &tid))
			return 0;
	}
	if (strcmp(p, "/status") != 0)
		return 0;
	*kind = IOPTRACE_PROC_STATUS;
	*target = (uint64_t)pid | (uint64_t)tid << 32;
	return 1;
}

/* One PROC_FILE request on the control socket; 0 and *reply on success, -1 when the server is gone. */
static int procfile_request(uint32_t kind, uint64_t target, void *buf, size_t size, struct ioptrace_reply *reply)
{
	struct ioptrace_request req = { 0 };
	int ctl, rc = 0;

	pthread_mutex_lock(&ctl_lock);
	ctl = control_socket();
	if (ctl < 0) {
		pthread_mutex_unlock(&ctl_lock);
		return -1;
	}
	req.kind = IOPTRACE_REQ_PROC_FILE;
	req.pid = (uint32_t)ctl_pid;
	req.tid = (uint32_t)syscall(SYS_gettid);
	req.aux = kind;
	req.ino = target;
	req.request = size;
	req.arg = (uint64_t)(uintptr_t)buf;
	if (write_all(ctl, &req, sizeof(req)) || read_all(ctl, reply, sizeof(*reply))) {
		sys_close(ctl);
		ctl_fd = -1;
		rc = -1;
	}
	pthread_mutex_unlock(&ctl_lock);
	return rc;
}

/* A read-only descriptor holding `len` bytes of `text` at offset 0: a memfd, reopened read-only. */
static int procfile_descriptor(const char *text, size_t len, int flags)
{
	char self[64];
	int memfd = memfd_create("ioptrace-proc", MFD_CLOEXEC);
	int fd;

	if (memfd < 0)
		return -1;
	for (size_t done = 0; done < len;) {
		ssize_t n = syscall(SYS_write, memfd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sys_close(memfd);
			errno = EIO;
			return -1;
		}
		done += (size_t)n;
	}
	/* A status file cannot be written: reopening read-only makes write() fail as the real one's would. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", memfd);
	fd = REAL("open", int (*)(const char *, int, ...))(self, O_RDONLY | (flags & O_CLOEXEC));
	sys_close(memfd);
	return fd;
}

/*
 * An open of `path` with `flags`: a descriptor of the emulated text, -1 with errno, or PROCFILE_PASS when
 * the path is not emulated (not a file above, not opened read-only, or the server does not know the
 * process) and the real file is to be opened.
 */
static int serve_procfile(const char *path, int flags)
{
	struct ioptrace_reply reply;
	uint32_t kind;
	uint64_t target;
	size_t size = 8192;
	int saved = errno;
	char *buf;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_PATH | O_DIRECTORY | O_CREAT)) ||
	    !procfile_of(path, &kind, &target))
		return PROCFILE_PASS;
	for (;;) {
		buf = malloc(size);
		if (!buf) {
			errno = ENOMEM;
			return -1;
		}
		if (procfile_request(kind, target, buf, size, &reply)) {
			free(buf);
			errno = saved;
			return PROCFILE_PASS;
		}
		if (reply.err == IOPTRACE_NOT_OURS || reply.err != 0 || (size_t)reply.ret <= size)
			break;
		/* The text grew past the buffer: ask again with room for it. */
		free(buf);
		size = (size_t)reply.ret + 4096;
	}
	if (reply.err == IOPTRACE_NOT_OURS) {
		free(buf);
		errno = saved;
		return PROCFILE_PASS;
	}
	if (reply.err) {
		free(buf);
		errno = reply.err;
		return -1;
	}
	{
		int fd = procfile_descriptor(buf, (size_t)reply.ret, flags);

		free(buf);
		if (fd >= 0)
			errno = saved;
		return fd;
	}
}

/*
 * fopen's open does not come back through the open() above (glibc calls its internal one), so fopen of an
 * emulated file is served here: opened through serve_procfile and wrapped with fdopen. NULL with
 * *handled 0 when fopen is to open the real file.
 */
static FILE *fopen_procfile(const char *path, const char *mode, int *handled)
{
	FILE *f;
	int fd;

	*handled = 0;
	if (!mode || mode[0] != 'r' || strchr(mode, '+'))
		return NULL;
	fd = serve_procfile(path, O_RDONLY | (strchr(mode, 'e') ? O_CLOEXEC : 0));
	if (fd == PROCFILE_PASS)
		return NULL;
	*handled = 1;
	if (fd < 0)
		return NULL;
	f = fdopen(fd, mode);
	if (!f) {
		int saved = errno;

		sys_close(fd);
		errno = saved;
	}
	return f;
}

typedef FILE *(*fopen_fn)(const char *, const char *);

FILE *fopen(const char *path, const char *mode)
{
	int handled;
	FILE *f = fopen_procfile(path, mode, &handled);

	return handled ? f : REAL("fopen", fopen_fn)(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	int handled;
	FILE *f = fopen_procfile(path, mode, &handled);

	return handled ? f : REAL("fopen64", fopen_fn)(path, mode);
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);

#define SERVE_OPEN(path, flags)                                        \
	char redirected_[4096];                                        \
	do {                                                           \
		int device_ = record_path() || server_path() ? device_of(path) : -1; \
		pid_t task_ = failnth_target(path);                    \
		const char *debugfs_;                                  \
		int procfd_;                                           \
		if (device_ >= 0 && record_path())                     \
			return record_open(device_, path, (flags));    \
		if (device_ >= 0)                                      \
			return open_device(device_, (flags));          \
		if (task_ != 0)                                        \
			return open_failnth(task_, (flags));           \
		if ((procfd_ = serve_procfile(path, (flags))) != PROCFILE_PASS) \
			return procfd_;                                \
		debugfs_ = debugfs_path(path, redirected_, sizeof(redirected_)); \
		if (debugfs_)                                          \
			path = debugfs_;                               \
	} while (0)

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	SERVE_OPEN(path, flags);
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return REAL("open", open_fn)(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	SERVE_OPEN(path, flags);
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return REAL("open64", open_fn)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	SERVE_OPEN(path, flags);
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return REAL("openat", openat_fn)(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	SERVE_OPEN(path, flags);
	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return REAL("openat64", openat_fn)(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags)
{
	SERVE_OPEN(path, flags);
	return REAL("__open_2", open2_fn)(path, flags);
}

int __open64_2(const char *path, int flags)
{
	SERVE_OPEN(path, flags);
	return REAL("__open64_2", open2_fn)(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	SERVE_OPEN(path, flags);
	return REAL("__openat_2", openat2_fn)(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	SERVE_OPEN(path, flags);
	return REAL("__openat64_2", openat2_fn)(dirfd, path, flags);
}

/*
 * close() of a context or access file: the kernel releases the file at the last close, before close
 * returns, so the next call of the program must find it released. The server hears the last close as
 * end-of-file too, but not necessarily before that next call: it is told here, and looks whether any
 * process still holds the file, before close returns.
 */
int close(int fd)
{
	struct ioptrace_request req = { 0 };
	struct ioptrace_reply reply;
	struct stat st;
	int ours = 0;
	int saved;
	int rc;
	int ctl;

	if (is_failnth_fd(fd))
		failnth_task[fd] = 0;
	if (server_path() && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
		pthread_mutex_lock(&ctl_lock);
		ours = is_own_inode((uint64_t)st.st_ino) && !(fd == ctl_fd && ctl_pid == getpid());
		pthread_mutex_unlock(&ctl_lock);
	}
	rc = sys_close(fd);
	if (rc == 0 && fd >= 0 && fd < MAX_RECORD_FD)
		record_ctx[fd] = 0;
	if (!ours || rc != 0)
		return rc;
	saved = errno;
	pthread_mutex_lock(&ctl_lock);
	ctl = control_socket();
	if (ctl >= 0) {
		req.kind = IOPTRACE_REQ_CLOSE;
		req.mm_gen = address_space_generation();
		req.pid = (uint32_t)ctl_pid;
		req.tid = (uint32_t)syscall(SYS_gettid);
		req.ino = (uint64_t)st.st_ino;
		if (write_all(ctl, &req, sizeof(req)) || read_all(ctl, &reply, sizeof(reply))) {
			sys_close(ctl);
			ctl_fd = -1;
		}
	}
	pthread_mutex_unlock(&ctl_lock);
	errno = saved;
	return rc;
}
