// SPDX-License-Identifier: GPL-2.0-only
/*
 * The runtime of a trace exported by `ioptrace export-c`: it performs the trace's ops on a real kernel
 * built with CONFIG_IOMMUFD_TEST and prints one JSON line per op. Two programs are built from it:
 * - `ioptrace export-c` writes this file followed by the op table of one trace and a main() that calls
 *   run_trace() on it, so the result is one C file that needs nothing but a C library (the reproducer a
 *   kernel developer gets);
 * - native/export-c/runner.c includes it and reads many traces in the compact form (src/groundtruth/
 *   compact.ts) from a file, running each in a forked child: one static binary for a whole VM boot.
 *
 * How the trace's world is built:
 * - The first process of this program is a supervisor, never a trace process. Each trace `process` is a
 *   forked child that runs the ops whose caller it is, on command, over a pipe; `exit` is the child's
 *   _exit, so the kernel tears its mm down as it does for any exiting process.
 * - Every object fd (an iommufd context, a selftest access) lives in every process at one fixed number
 *   (CTX_FD0 + k, ACCESS_FD0 + k): the selftest commands name an access by its fd number, and the kernel
 *   looks that number up in the calling process. New fds reach existing children by pidfd_getfd.
 * - Object ids the kernel hands out (IOAS ids, mock devices, access pages ids) and each op's answer live
 *   in one MAP_SHARED page set created before the first fork; only the supervisor prints.
 * - After each op the supervisor drains /dev/kmsg and prints every WARNING/BUG line with the op's index.
 *
 * The structure layouts are written here from the iommufd uAPI and the selftest command's documented
 * fields (as native/compat and native/groundtruth do); nothing is included from a kernel tree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- uAPI ------------------------------------------------------------------------------------------- */

/* iommufd and VFIO ioctls carry no size in their number: type ';' and a command number. */
#define XIO(n) ((0x3bu << 8) | (unsigned)(n))
#define X_DESTROY XIO(0x80)
#define X_IOAS_ALLOC XIO(0x81)
#define X_IOAS_ALLOW_IOVAS XIO(0x82)
#define X_IOAS_COPY XIO(0x83)
#define X_IOAS_MAP XIO(0x85)
#define X_IOAS_UNMAP XIO(0x86)
#define X_OPTION XIO(0x87)
#define X_VFIO_IOAS XIO(0x88)
#define X_HWPT_ALLOC XIO(0x89)
#define X_TEST_CMD XIO(0x80 + 32)
#define X_VFIO_SET_IOMMU XIO(100 + 2)
#define X_VFIO_UNMAP_DMA XIO(100 + 14)

#define MAP_FLAG_FIXED 1u
#define MAP_FLAG_WRITE 2u
#define MAP_FLAG_READ 4u

struct x_destroy { uint32_t size, id; };
struct x_ioas_alloc { uint32_t size, flags, out_ioas_id; };
struct x_range { uint64_t start, last; };
struct x_allow { uint32_t size, ioas_id, num_iovas, reserved; uint64_t ranges; };
struct x_map { uint32_t size, flags, ioas_id, reserved; uint64_t user_va, length, iova; };
struct x_copy { uint32_t size, flags, dst_ioas_id, src_ioas_id; uint64_t length, dst_iova, src_iova; };
struct x_unmap { uint32_t size, ioas_id; uint64_t iova, length; };
struct x_option { uint32_t size, option_id; uint16_t op, reserved; uint32_t object_id; uint64_t val64; };
struct x_vfio_ioas { uint32_t size, ioas_id; uint16_t op, reserved; };
struct x_dma_unmap { uint32_t argsz, flags; uint64_t iova, size; };
/* IOMMU_HWPT_ALLOC up to data_uptr (its smallest accepted size): a paging hwpt, no driver data. */
struct x_hwpt_alloc { uint32_t size, flags, dev_id, pt_id, out_hwpt_id, reserved, data_type, data_len; uint64_t data_uptr; };

#define OPTION_RLIMIT_MODE 0
#define OPTION_HUGE_PAGES 1
#define OPTION_SET 0
#define VFIO_IOAS_SET 1
#define VFIO_TYPE1 1

/* The selftest command: a 16-byte head, a union of per-command arguments, then `last`. */
enum {
	T_MOCK_DOMAIN = 2,
	T_CHECK_MAP = 3,
	T_CHECK_REFS = 4,
	T_CREATE_ACCESS = 5,
	T_DESTROY_ACCESS_PAGES = 6,
	T_ACCESS_PAGES = 7,
	T_ACCESS_RW = 8,
	T_TEMP_LIMIT = 9,
	T_MOCK_REPLACE = 10,
	T_ACCESS_REPLACE = 11,
};

struct x_test {
	uint32_t size, op, id, reserved;
	union {
		struct { uint32_t stdev, hwpt, idev; } mock;
		struct { uint64_t iova, length, uptr; } check_map;
		struct { uint64_t length, uptr; uint32_t refs; } check_refs;
		struct { uint32_t out_fd, flags; } create_access;
		struct { uint32_t pages_id; } destroy_pages;
		struct { uint32_t flags, out_pages_id; uint64_t iova, length, uptr; } pages;
		struct { uint64_t iova, length, uptr; uint32_t flags; } rw;
		struct { uint32_t limit; } limit;
		struct { uint32_t ioas_id; } replace;
		uint8_t space[48];
	} u;
	uint32_t last;
};
_Static_assert(sizeof(struct x_map) == 40, "iommu_ioas_map is 40 bytes");
_Static_assert(sizeof(struct x_copy) == 40, "iommu_ioas_copy is 40 bytes");
_Static_assert(sizeof(struct x_option) == 24, "iommu_option is 24 bytes");
_Static_assert(sizeof(struct x_hwpt_alloc) == 40, "iommu_hwpt_alloc up to data_uptr is 40 bytes");
_Static_assert(__builtin_offsetof(struct x_test, last) == 64, "iommu_test_cmd.last is at 64");

/* ---- the op table (written by the exporter after this file) --------------------------------------- */

enum op_kind {
	K_SKIP, K_PROCESS, K_MMAP, K_MUNMAP, K_WRITE, K_READ, K_EXIT, K_RLIMIT, K_FAULT, K_TEMP_LIMIT, K_OPEN,
	K_IOAS_ALLOC, K_IOAS_MAP, K_IOAS_UNMAP, K_IOAS_COPY, K_ALLOW_IOVAS, K_HUGE_PAGES, K_DOMAIN_ATTACH,
	K_DOMAIN_DETACH, K_ACCESS_CREATE, K_ACCESS_DESTROY, K_ACCESS_PIN, K_ACCESS_UNPIN, K_ACCESS_RW,
	K_ACCESS_REPLACE, K_VFIO_UNMAP, K_CHECK_MAP, K_CHECK_REFS,
};

struct op {
	int kind;
	int line;
	const char *name;
	int caller;       /* process slot that issues it; -1: the supervisor */
	int a, b;         /* object slots: ctx, ioas, access, domain, pin, process (by kind) */
	uint64_t x, y, z; /* addresses, IOVAs, lengths, values (by kind) */
	uint32_t flags;
	const char *text; /* hex data, or the reason an op is not exportable */
	const struct x_range *ranges;
	int n;            /* number of ranges, or of slots in `domains` */
	const int *domains; /* domain slots (check_map), or candidate pin slots (access_unpin) */
};

/* The trace being run (run_trace sets them). */
static const struct op *OPS;
static int ops_count;

#define CTX_FD0 100
#define ACCESS_FD0 300
#define MAX_PROCS 64

/* ---- shared state ------------------------------------------------------------------------------------ */

/* Every object slot is made by an op of the trace, so the op count bounds each table: they are sized by it
 * and live after the struct in the same shared mapping (pointers made before the first fork stay valid). */
struct shared {
	uint32_t *ioas_id;
	uint32_t *stdev_id; /* the mock device: destroying it detaches the domain */
	uint32_t *hwpt_id;  /* the domain itself: what MD_CHECK_MAP names */
	uint32_t *pages_id;
	int *pin_ok;
	int *domain_ok;
	int *own_hwpt;      /* the domain is a hwpt of its own (IOMMU_HWPT_ALLOC): detach destroys it too */
	int *access_ok;     /* the access exists: created, not yet destroyed */
	int *vfio_type1;
	int err;        /* the op's errno (0: success) */
	int check_err;  /* a check's answer */
	int has_value;
	uint64_t value; /* iova or unmapped */
	char data[1 << 20];
};

static struct shared *S;
static int child_cmd[MAX_PROCS]; /* supervisor -> child */
static int child_ack[MAX_PROCS]; /* child -> supervisor */
static int parent_pidfd = -1;   /* in a child: the supervisor, whose fds it copies (pidfd_getfd) */
static pid_t child_pid[MAX_PROCS];
static int alive[MAX_PROCS];
static int kmsg_fd = -1;

static const char *errname(int e)
{
	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case EDEADLK: return "EDEADLK";
	case ENOSYS: return "ENOSYS";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case 524: return "ENOTSUPP";
	default: {
		/* Any other errno by its number, so that a report can still say which it was. */
		static char other[16];

		snprintf(other, sizeof(other), "E%d", e);
		return other;
	}
	}
}

/* ---- commands and fd passing -------------------------------------------------------------------------
 * Pipes carry the commands (the minimal kernel has no Unix sockets, so no SCM_RIGHTS): a child copies a
 * new object fd from the supervisor's table with pidfd_getfd, at the same number. */

struct msg {
	int what; /* M_RUN, M_FD, M_CLOSE, M_EXIT */
	int index;
	int num;  /* fixed fd number for M_FD / M_CLOSE */
	unsigned fail_nth;
};
enum { M_RUN = 1, M_FD, M_CLOSE, M_EXIT };

static void send_msg(int slot, const struct msg *m)
{
	if (write(child_cmd[slot], m, sizeof(*m)) != sizeof(*m)) {
		perror("ioptrace-export: write to a trace process");
		exit(90);
	}
}

static void recv_msg(int fd, struct msg *m)
{
	if (read(fd, m, sizeof(*m)) != sizeof(*m))
		exit(0); /* the supervisor is gone */
}

static void wait_ack(int slot)
{
	char b;

	if (read(child_ack[slot], &b, 1) != 1) {
		fprintf(stderr, "ioptrace-export: process slot %d died\n", slot);
		exit(91);
	}
}

/* Put `fd` at the fixed number `num` in the supervisor and in every live child. */
static void share_fd(int fd, int num)
{
	if (fd != num) {
		dup2(fd, num);
		close(fd);
	}
	for (int p = 0; p < MAX_PROCS; p++) {
		struct msg m = { M_FD, 0, num, 0 };

		if (!alive[p])
			continue;
		send_msg(p, &m);
		wait_ack(p);
	}
}

/* ---- memory accesses with a fault guard ------------------------------------------------------------- */

static sigjmp_buf fault_jmp;
static volatile int guarding;

static void on_segv(int sig)
{
	(void)sig;
	if (guarding)
		siglongjmp(fault_jmp, 1);
	_exit(92);
}

static int guarded_copy(void *dst, const void *src, size_t n)
{
	guarding = 1;
	if (sigsetjmp(fault_jmp, 1)) {
		guarding = 0;
		return EFAULT;
	}
	memcpy(dst, src, n);
	guarding = 0;
	return 0;
}

static int hexval(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static void to_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static uint8_t *from_hex(const char *text, size_t *n)
{
	size_t len = strlen(text) / 2;
	uint8_t *p = malloc(len ? len : 1);

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(hexval(text[2 * i]) << 4 | hexval(text[2 * i + 1]));
	*n = len;
	return p;
}

/* ---- one op, in the process that issues it ---------------------------------------------------------- */

static int arm_fail_nth(unsigned nth)
{
	char path[64], val[16];
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth", (long)syscall(SYS_gettid));
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	n = snprintf(val, sizeof(val), "%u", nth);
	n = (int)write(fd, val, (size_t)n);
	close(fd);
	return n > 0 ? 0 : -1;
}

static int test_cmd(int fd, struct x_test *t)
{
	t->size = sizeof(*t);
	return ioctl(fd, X_TEST_CMD, t);
}

#define RC(expr) ((expr) ? errno : 0)

/* Whether domain slot `n`'s hwpt is also the hwpt of another attached domain of the trace. */
static int hwpt_shared(int n)
{
	for (int k = 0; k < ops_count + 1; k++)
		if (k != n && S->domain_ok[k] && S->hwpt_id[k] == S->hwpt_id[n])
			return 1;
	return 0;
}

/*
 * A trace's domain_attach is always a new domain (iopt_table_add_domain). MOCK_DOMAIN on an IOAS that has an
 * automatic hwpt already attaches the new mock device to that hwpt (iommufd_device_auto_get_domain) and
 * fills nothing, so then the domain is made explicitly: IOMMU_HWPT_ALLOC with the new device allocates a
 * paging hwpt on the IOAS (filled from the IOAS, the op's answer), and MOCK_DOMAIN_REPLACE moves the device
 * onto it. On failure the device goes again and the slot holds no domain.
 */
static int own_domain(int ctxfd, int n, uint32_t ioas_id, uint32_t idev)
{
	struct x_hwpt_alloc h = { sizeof(h), 0, idev, ioas_id, 0, 0, 0, 0, 0 };
	struct x_destroy dev = { sizeof(dev), S->stdev_id[n] };
	int e = RC(ioctl(ctxfd, X_HWPT_ALLOC, &h));

	if (!e) {
		struct x_test r = { .op = T_MOCK_REPLACE, .id = S->stdev_id[n] };

		r.u.replace.ioas_id = h.out_hwpt_id;
		e = RC(test_cmd(ctxfd, &r));
		if (e) {
			struct x_destroy c = { sizeof(c), h.out_hwpt_id };

			ioctl(ctxfd, X_DESTROY, &dev);
			ioctl(ctxfd, X_DESTROY, &c);
		}
	} else {
		ioctl(ctxfd, X_DESTROY, &dev);
	}
	if (e) {
		S->domain_ok[n] = 0;
		return e;
	}
	S->hwpt_id[n] = h.out_hwpt_id;
	S->own_hwpt[n] = 1;
	return 0;
}

/*
 * An op on an access the trace never created (its access_create failed) or already destroyed: the model
 * cannot resolve the name (ENOENT), and no call of user space names such an access (the selftest would see
 * a descriptor that is no access, -EBADFD, or a closed one, -EBADF). The program answers as the model does
 * and performs nothing, as it does for an unpin of a pin that failed.
 */
static int no_such_access(const struct op *o)
{
	switch (o->kind) {
	case K_ACCESS_PIN:
	case K_ACCESS_UNPIN:
	case K_ACCESS_RW:
	case K_ACCESS_REPLACE:
	case K_ACCESS_DESTROY:
		return !S->access_ok[o->b];
	default:
		return 0;
	}
}

static void run_op(const struct op *o, unsigned fail_nth)
{
	int ctxfd = CTX_FD0 + o->a;
	int e = 0;

	S->has_value = 0;
	S->check_err = 0;
	S->data[0] = 0;
	if (no_such_access(o)) {
		S->err = ENOENT;
		return;
	}
	if (fail_nth)
		arm_fail_nth(fail_nth);
	switch (o->kind) {
	case K_MMAP: {
		int prot = o->flags & 1 ? PROT_READ : PROT_READ | PROT_WRITE;
		int fl = (o->flags & 4 ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE |
			 MAP_POPULATE;

		if (o->flags & 2)
			fl |= MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
		e = mmap((void *)(uintptr_t)o->x, o->y, prot, fl, -1, 0) == MAP_FAILED ? errno : 0;
		break;
	}
	case K_MUNMAP:
		e = RC(munmap((void *)(uintptr_t)o->x, o->y));
		break;
	case K_WRITE: {
		size_t n;
		uint8_t *p = from_hex(o->text, &n);

		e = guarded_copy((void *)(uintptr_t)o->x, p, n);
		free(p);
		break;
	}
	case K_READ: {
		size_t n = o->y < sizeof(S->data) / 2 - 1 ? o->y : sizeof(S->data) / 2 - 1;
		uint8_t *p = malloc(n ? n : 1);

		e = guarded_copy(p, (void *)(uintptr_t)o->x, n);
		if (!e)
			to_hex(p, n, S->data);
		free(p);
		break;
	}
	case K_RLIMIT: {
		struct rlimit r = { o->x, o->x };

		e = RC(setrlimit(RLIMIT_MEMLOCK, &r));
		break;
	}
	case K_IOAS_ALLOC: {
		struct x_ioas_alloc c = { .size = sizeof(c) };

		e = RC(ioctl(ctxfd, X_IOAS_ALLOC, &c));
		if (!e) {
			S->ioas_id[o->b] = c.out_ioas_id;
			if (S->vfio_type1[o->a]) {
				struct x_vfio_ioas v = { sizeof(v), c.out_ioas_id, VFIO_IOAS_SET, 0 };

				e = RC(ioctl(ctxfd, X_VFIO_IOAS, &v));
				if (!e)
					e = RC(ioctl(ctxfd, X_VFIO_SET_IOMMU, VFIO_TYPE1));
			}
		}
		break;
	}
	case K_IOAS_MAP: {
		struct x_map c = { .size = sizeof(c), .flags = o->flags, .ioas_id = S->ioas_id[o->b],
				   .user_va = o->x, .length = o->y, .iova = o->z };

		e = RC(ioctl(ctxfd, X_IOAS_MAP, &c));
		if (!e) {
			S->has_value = 1;
			S->value = c.iova;
		}
		break;
	}
	case K_IOAS_UNMAP: {
		struct x_unmap c = { sizeof(c), S->ioas_id[o->b], o->x, o->y };

		e = RC(ioctl(ctxfd, X_IOAS_UNMAP, &c));
		if (!e) {
			S->has_value = 1;
			S->value = c.length;
		}
		break;
	}
	case K_IOAS_COPY: {
		struct x_copy c = { .size = sizeof(c), .flags = o->flags, .dst_ioas_id = S->ioas_id[o->b],
				    .src_ioas_id = S->ioas_id[o->n], .length = o->y, .dst_iova = o->z,
				    .src_iova = o->x };

		e = RC(ioctl(ctxfd, X_IOAS_COPY, &c));
		if (!e) {
			S->has_value = 1;
			S->value = c.dst_iova;
		}
		break;
	}
	case K_ALLOW_IOVAS: {
		struct x_allow c = { sizeof(c), S->ioas_id[o->b], (uint32_t)o->n, 0, (uintptr_t)o->ranges };

		e = RC(ioctl(ctxfd, X_IOAS_ALLOW_IOVAS, &c));
		break;
	}
	case K_HUGE_PAGES: {
		struct x_option c = { sizeof(c), OPTION_HUGE_PAGES, OPTION_SET, 0, S->ioas_id[o->b], o->x };

		e = RC(ioctl(ctxfd, X_OPTION, &c));
		break;
	}
	case K_DOMAIN_ATTACH: {
		struct x_test t = { .op = T_MOCK_DOMAIN, .id = S->ioas_id[o->b] };

		e = RC(test_cmd(ctxfd, &t));
		S->domain_ok[o->n] = !e;
		S->own_hwpt[o->n] = 0;
		if (!e) {
			S->stdev_id[o->n] = t.u.mock.stdev;
			S->hwpt_id[o->n] = t.u.mock.hwpt;
			if (hwpt_shared(o->n))
				e = own_domain(ctxfd, o->n, S->ioas_id[o->b], t.u.mock.idev);
		}
		break;
	}
	case K_DOMAIN_DETACH: {
		struct x_destroy c = { sizeof(c), S->stdev_id[o->n] };

		e = RC(ioctl(ctxfd, X_DESTROY, &c));
		if (!e)
			S->domain_ok[o->n] = 0; /* its hwpt id may be handed out again */
		if (!e && S->own_hwpt[o->n]) {
			struct x_destroy h = { sizeof(h), S->hwpt_id[o->n] };

			e = RC(ioctl(ctxfd, X_DESTROY, &h));
			S->own_hwpt[o->n] = 0;
		}
		break;
	}
	case K_ACCESS_PIN: {
		struct x_test t = { .op = T_ACCESS_PAGES, .id = (uint32_t)(ACCESS_FD0 + o->b) };

		t.u.pages.flags = o->flags;
		t.u.pages.iova = o->x;
		t.u.pages.length = o->y;
		e = RC(test_cmd(ctxfd, &t));
		S->pin_ok[o->n] = !e;
		if (!e)
			S->pages_id[o->n] = t.u.pages.out_pages_id;
		break;
	}
	case K_ACCESS_UNPIN: {
		/* `domains` lists the earlier pins of exactly this range, oldest first: undo the first that still
		 * holds its pages id, as the model undoes the oldest such pin. None: the kernel has no such id. */
		struct x_test t = { .op = T_DESTROY_ACCESS_PAGES, .id = (uint32_t)(ACCESS_FD0 + o->b) };
		int pin = -1;

		for (int i = 0; i < o->n && pin < 0; i++)
			if (S->pin_ok[o->domains[i]])
				pin = o->domains[i];
		if (pin < 0) {
			e = ENOENT;
			break;
		}
		t.u.destroy_pages.pages_id = S->pages_id[pin];
		e = RC(test_cmd(ctxfd, &t));
		if (!e)
			S->pin_ok[pin] = 0;
		break;
	}
	case K_ACCESS_RW: {
		struct x_test t = { .op = T_ACCESS_RW, .id = (uint32_t)(ACCESS_FD0 + o->b) };
		size_t n = o->y;
		uint8_t *buf;

		if (o->flags & 1) {
			buf = from_hex(o->text, &n);
		} else {
			buf = calloc(n ? n : 1, 1);
		}
		t.u.rw.iova = o->x;
		t.u.rw.length = o->y;
		t.u.rw.uptr = (uintptr_t)buf;
		t.u.rw.flags = o->flags;
		e = RC(test_cmd(ctxfd, &t));
		if (!e && !(o->flags & 1) && n < sizeof(S->data) / 2)
			to_hex(buf, n, S->data);
		free(buf);
		break;
	}
	case K_ACCESS_REPLACE: {
		struct x_test t = { .op = T_ACCESS_REPLACE, .id = (uint32_t)(ACCESS_FD0 + o->b) };

		t.u.replace.ioas_id = S->ioas_id[o->n];
		e = RC(test_cmd(ctxfd, &t));
		break;
	}
	case K_VFIO_UNMAP: {
		struct x_vfio_ioas v = { sizeof(v), S->ioas_id[o->b], VFIO_IOAS_SET, 0 };
		struct x_dma_unmap u = { sizeof(u), 0, o->x, o->y };

		e = RC(ioctl(ctxfd, X_VFIO_IOAS, &v));
		if (!e)
			e = RC(ioctl(ctxfd, X_VFIO_UNMAP_DMA, &u));
		S->has_value = 1;
		S->value = e ? 0 : u.size;
		break;
	}
	case K_CHECK_MAP:
		for (int i = 0; i < o->n && !S->check_err; i++) {
			struct x_test t = { .op = T_CHECK_MAP };

			if (!S->domain_ok[o->domains[i]])
				continue;
			t.id = S->hwpt_id[o->domains[i]];
			t.u.check_map.iova = o->x;
			t.u.check_map.length = o->y;
			t.u.check_map.uptr = o->z;
			S->check_err = RC(test_cmd(ctxfd, &t));
		}
		break;
	case K_CHECK_REFS: {
		struct x_test t = { .op = T_CHECK_REFS };

		t.u.check_refs.uptr = o->x;
		t.u.check_refs.length = o->y;
		t.u.check_refs.refs = (uint32_t)o->z;
		S->check_err = RC(test_cmd(ctxfd, &t));
		break;
	}
	default:
		e = ENOSYS;
	}
	if (fail_nth)
		arm_fail_nth(0);
	S->err = e;
}

/* ---- processes -------------------------------------------------------------------------------------- */

static void child_loop(int cmd, int ack_fd)
{
	for (;;) {
		struct msg m;
		char ack = 1;

		recv_msg(cmd, &m);
		if (m.what == M_EXIT)
			_exit(0);
		if (m.what == M_FD) {
			int fd = (int)syscall(SYS_pidfd_getfd, parent_pidfd, m.num, 0);

			if (fd < 0) {
				perror("ioptrace-export: pidfd_getfd");
				_exit(89);
			}
			if (fd != m.num) {
				dup2(fd, m.num);
				close(fd);
			}
		} else if (m.what == M_CLOSE) {
			S->err = close(m.num) ? errno : 0;
		} else if (m.what == M_RUN) {
			run_op(&OPS[m.index], m.fail_nth);
		}
		if (write(ack_fd, &ack, 1) != 1)
			_exit(93);
	}
}

/* Credentials of a trace process: its uid, RLIMIT_MEMLOCK, and CAP_IPC_LOCK only when the trace gives it
 * (with it iommufd charges nothing). The other capabilities stay, so `rlimit` can raise the limit. */
static void become(uint32_t uid, uint64_t memlock, int cap_ipc_lock)
{
	struct { uint32_t version; int pid; } head = { 0x20080522, 0 };
	struct { uint32_t effective, permitted, inheritable; } sets[2];
	struct rlimit r = { memlock, memlock };

	setrlimit(RLIMIT_MEMLOCK, &r);
	prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	if (uid && setresuid(uid, uid, uid))
		_exit(94);
	if (syscall(SYS_capget, &head, sets))
		_exit(95);
	sets[0].effective = sets[0].permitted;
	sets[1].effective = sets[1].permitted;
	if (!cap_ipc_lock) {
		sets[0].effective &= ~(1u << 14);
		sets[0].permitted &= ~(1u << 14);
		sets[0].inheritable &= ~(1u << 14);
	}
	if (syscall(SYS_capset, &head, sets))
		_exit(96);
}

static void start_process(const struct op *o)
{
	int cmd[2], ack[2];
	pid_t pid, parent = getpid();

	if (pipe(cmd) || pipe(ack)) {
		perror("ioptrace-export: pipe");
		exit(97);
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		for (int p = 0; p < MAX_PROCS; p++)
			if (alive[p]) {
				close(child_cmd[p]);
				close(child_ack[p]);
			}
		if (kmsg_fd >= 0)
			close(kmsg_fd);
		/* Before the credentials change: the supervisor's fds stay reachable through the pidfd. */
		parent_pidfd = (int)syscall(SYS_pidfd_open, parent, 0);
		become((uint32_t)o->x, o->y, (int)o->flags);
		child_loop(cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	child_cmd[o->b] = cmd[1];
	child_ack[o->b] = ack[0];
	child_pid[o->b] = pid;
	alive[o->b] = 1;
}

static void end_process(int slot)
{
	struct msg m = { M_EXIT, 0, 0, 0 };
	int status;

	send_msg(slot, &m);
	waitpid(child_pid[slot], &status, 0);
	close(child_cmd[slot]);
	close(child_ack[slot]);
	alive[slot] = 0;
}

/* ---- the kernel log --------------------------------------------------------------------------------- */

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* Print every WARNING/BUG record logged since the last call, as following op `index`. */
static void drain_kmsg(int index)
{
	char rec[8192];

	if (kmsg_fd < 0)
		return;
	for (;;) {
		ssize_t n = read(kmsg_fd, rec, sizeof(rec) - 1);
		char *text;

		if (n < 0) {
			if (errno == EPIPE)
				continue; /* overwritten records: keep reading */
			break;
		}
		rec[n] = 0;
		text = strchr(rec, ';');
		if (!text)
			continue;
		text++;
		*strchrnul(text, '\n') = 0;
		if (strncmp(text, "WARNING:", 8) && strncmp(text, "kernel BUG at", 13) && strncmp(text, "BUG:", 4))
			continue;
		printf("{\"op\":%d,\"kmsg\":", index);
		json_string(text);
		printf("}\n");
	}
}

/* ---- the supervisor --------------------------------------------------------------------------------- */

static void debugfs_write(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		if (write(fd, value, strlen(value)) < 0)
			perror(path);
		close(fd);
	}
}

static void report(int index, const struct op *o)
{
	printf("{\"op\":%d,\"line\":%d,\"name\":\"%s\"", index, o->line, o->name);
	if (o->kind == K_SKIP) {
		printf(",\"not_exportable\":");
		json_string(o->text);
		printf("}\n");
		return;
	}
	if (o->kind == K_CHECK_MAP || o->kind == K_CHECK_REFS) {
		printf(",\"check\":\"%s\"}\n", errname(S->check_err));
		return;
	}
	printf(",\"errno\":\"%s\"", errname(S->err));
	if (S->has_value)
		printf(",\"value\":\"%llu\"", (unsigned long long)S->value);
	if (S->data[0])
		printf(",\"data\":\"%s\"", S->data);
	printf("}\n");
}

static void run_in(int caller, int index, unsigned fail_nth)
{
	if (caller < 0) {
		run_op(&OPS[index], fail_nth);
		return;
	}
	struct msg m = { M_RUN, index, 0, fail_nth };

	send_msg(caller, &m);
	wait_ack(caller);
}

/* The shared page set of a trace of `n_ops` ops: the answers, then one table per object kind. */
static int map_shared(int n_ops)
{
	size_t slots = (size_t)n_ops + 1;
	size_t bytes = sizeof(*S) + slots * (4 * sizeof(uint32_t) + 5 * sizeof(int));
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	S = (struct shared *)p;
	p += sizeof(*S);
	S->ioas_id = (uint32_t *)p, p += slots * sizeof(uint32_t);
	S->stdev_id = (uint32_t *)p, p += slots * sizeof(uint32_t);
	S->hwpt_id = (uint32_t *)p, p += slots * sizeof(uint32_t);
	S->pages_id = (uint32_t *)p, p += slots * sizeof(uint32_t);
	S->pin_ok = (int *)p, p += slots * sizeof(int);
	S->domain_ok = (int *)p, p += slots * sizeof(int);
	S->own_hwpt = (int *)p, p += slots * sizeof(int);
	S->access_ok = (int *)p, p += slots * sizeof(int);
	S->vfio_type1 = (int *)p;
	return 0;
}

/* Run one trace in this process (its supervisor) and print its JSON lines; returns the exit status. Every
 * object fd it opened is closed before it returns, so the kernel has torn the trace's objects down. */
static int run_trace(const char *trace_name, const struct op *ops, int n_ops)
{
	unsigned pending_nth = 0;
	int n_ctxs = 0, n_accesses = 0;
	struct sigaction sa = { .sa_handler = on_segv, .sa_flags = SA_NODEFER };

	OPS = ops;
	ops_count = n_ops;
	for (int i = 0; i < n_ops; i++) {
		if (ops[i].kind == K_OPEN && ops[i].a >= n_ctxs)
			n_ctxs = ops[i].a + 1;
		if (ops[i].kind == K_ACCESS_CREATE && ops[i].b >= n_accesses)
			n_accesses = ops[i].b + 1;
	}
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (map_shared(n_ops)) {
		perror("ioptrace-export: mmap");
		return 98;
	}
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
	/* fail-nth faults in slab and page allocations that may sleep, as the kernel's fail-nth test sets it. */
	debugfs_write("/sys/kernel/debug/failslab/ignore-gfp-wait", "N");
	debugfs_write("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N");
	debugfs_write("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N");
	debugfs_write("/sys/kernel/debug/fail_page_alloc/min-order", "0");
	printf("{\"begin\":");
	json_string(trace_name);
	printf(",\"ops\":%d}\n", n_ops);
	for (int i = 0; i < n_ops; i++) {
		const struct op *o = &OPS[i];
		int supervised = o->kind == K_PROCESS || o->kind == K_EXIT || o->kind == K_FAULT ||
				 o->kind == K_TEMP_LIMIT || o->kind == K_OPEN || o->kind == K_ACCESS_CREATE ||
				 o->kind == K_ACCESS_DESTROY;
		int e = 0;

		/* A fault armed by the previous op hits the next op, wherever it runs. */
		if (supervised && pending_nth && o->kind != K_FAULT && o->kind != K_PROCESS && o->kind != K_EXIT)
			arm_fail_nth(pending_nth);
		switch (o->kind) {
		case K_SKIP:
			break;
		case K_PROCESS:
			start_process(o);
			break;
		case K_EXIT:
			end_process(o->b);
			break;
		case K_FAULT:
			pending_nth = (unsigned)o->x;
			break;
		case K_TEMP_LIMIT: {
			struct x_test t = { .op = T_TEMP_LIMIT };
			int fd = open("/dev/iommu", O_RDWR);

			t.u.limit.limit = (uint32_t)o->x;
			e = fd < 0 ? errno : RC(test_cmd(fd, &t));
			if (fd >= 0)
				close(fd);
			break;
		}
		case K_OPEN: {
			int fd = open("/dev/iommu", O_RDWR);

			e = fd < 0 ? errno : 0;
			if (!e && o->flags & 1) {
				struct x_option c = { sizeof(c), OPTION_RLIMIT_MODE, OPTION_SET, 0, 0, 1 };

				e = RC(ioctl(fd, X_OPTION, &c));
			}
			S->vfio_type1[o->a] = (o->flags & 2) != 0;
			if (fd >= 0)
				share_fd(fd, CTX_FD0 + o->a);
			break;
		}
		case K_ACCESS_CREATE: {
			struct x_test t = { .op = T_CREATE_ACCESS, .id = S->ioas_id[o->n] };

			t.u.create_access.flags = o->flags;
			e = RC(test_cmd(CTX_FD0 + o->a, &t));
			if (!e) {
				share_fd((int)t.u.create_access.out_fd, ACCESS_FD0 + o->b);
				S->access_ok[o->b] = 1;
			}
			break;
		}
		case K_ACCESS_DESTROY: {
			if (no_such_access(o)) {
				e = ENOENT;
				break;
			}
			S->access_ok[o->b] = 0;
			/* Every process holds the access fd; the caller's close is the last, so the release runs there. */
			for (int p = 0; p < MAX_PROCS; p++) {
				struct msg m = { M_CLOSE, 0, ACCESS_FD0 + o->b, 0 };

				if (!alive[p] || p == o->caller)
					continue;
				send_msg(p, &m);
				wait_ack(p);
			}
			if (o->caller >= 0) {
				struct msg m = { M_CLOSE, 0, ACCESS_FD0 + o->b, 0 };

				close(ACCESS_FD0 + o->b);
				send_msg(o->caller, &m);
				wait_ack(o->caller);
				e = S->err; /* the caller's close: EBADF when the access was never created */
			} else {
				e = RC(close(ACCESS_FD0 + o->b));
			}
			break;
		}
		default:
			run_in(o->caller, i, pending_nth);
			e = S->err;
			pending_nth = 0;
			break;
		}
		if (supervised) {
			if (pending_nth && o->kind != K_FAULT) {
				arm_fail_nth(0);
				pending_nth = 0;
			}
			S->err = e;
			S->has_value = 0;
			S->check_err = 0;
			S->data[0] = 0;
		}
		report(i + 1, o);
		drain_kmsg(i + 1);
	}
	for (int p = 0; p < MAX_PROCS; p++)
		if (alive[p])
			end_process(p);
	for (int k = 0; k < n_accesses; k++)
		close(ACCESS_FD0 + k);
	for (int k = 0; k < n_ctxs; k++)
		close(CTX_FD0 + k);
	drain_kmsg(n_ops + 1);
	if (kmsg_fd >= 0)
		close(kmsg_fd);
	printf("{\"end\":");
	json_string(trace_name);
	printf("}\n");
	return 0;
}
