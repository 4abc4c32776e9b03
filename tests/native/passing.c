// SPDX-License-Identifier: GPL-2.0-only
/*
 * File lifetime across processes: a dup then a close of the original, a forked child whose copy of a pinned
 * page holds no pin, a descriptor passed with SCM_RIGHTS to a process forked before the open, and that
 * process's exit as the last holder (its exit releases the context after its address space is gone).
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include "client.h"

static int send_fd(int sock, int fd)
{
	char byte = 'f';
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : errno;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static int ranges_of(int fd, uint32_t ioas)
{
	struct t_range r[1];
	struct t_iova_ranges q = { sizeof(q), ioas, 1, 0, (uintptr_t)r, 0 };
	return call(fd, IOVA_RANGES, &q);
}

int main(void)
{
	int sp[2], go[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || pipe(go))
		return 2;
	fflush(stdout);
	pid_t b = fork();
	if (b == 0) {
		/* Forked before the open: the context reaches this process only through the socket. */
		close(sp[0]);
		close(go[1]);
		char byte;
		/*
		 * Receive only once the sender has closed its own descriptor: until then the descriptor is in
		 * flight, held by no process, and the one received is then the last.
		 */
		if (read(go[0], &byte, 1) != 1)
			_exit(2);
		int fd = recv_fd(sp[1]);
		uint32_t ioas = 1;
		printf("B received a descriptor, iova_ranges %s\n", errname(ranges_of(fd, ioas)));
		char *mine = pages(8192);
		struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)mine, 8192, 0 };
		int e = call(fd, IOAS_MAP, &m);
		printf("B map %s iova=0x%llx\n", errname(e), (unsigned long long)m.iova);
		printf("B check_refs(1) %s\n", errname(check_refs(fd, mine, 8192, 1)));
		fflush(stdout);
		/* Exits holding the last descriptor and its mapping: the exit releases the context. */
		_exit(3);
	}
	close(sp[1]);
	close(go[0]);

	int fd = open("/dev/iommu", O_RDWR);
	uint32_t ioas = ioas_alloc(fd);
	struct t_test_cmd md = { .size = sizeof(md), .op = OP_MOCK_DOMAIN, .id = ioas };
	printf("mock_domain %s\n", errname(call(fd, TEST_CMD, &md)));
	char *buf = pages(4096);
	struct t_map m = { sizeof(m), MAP_READABLE | MAP_WRITEABLE, ioas, 0, (uintptr_t)buf, 4096, 0 };
	int e = call(fd, IOAS_MAP, &m);
	printf("parent map %s iova=0x%llx\n", errname(e), (unsigned long long)m.iova);

	int copy = dup(fd);
	close(fd);
	printf("dup then close: the copy sees the ioas %s\n", errname(ranges_of(copy, ioas)));
	printf("parent check_refs(1) %s\n", errname(check_refs(copy, buf, 4096, 1)));
	fflush(stdout);

	pid_t a = fork();
	if (a == 0) {
		/* The pinned page was copied for this child at fork: its copy holds no pin. */
		printf("child check_refs(0) on its copy %s\n", errname(check_refs(copy, buf, 4096, 0)));
		printf("child check_refs(1) on its copy %s\n", errname(check_refs(copy, buf, 4096, 1)));
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(a, &status, 0);
	printf("child exit %d\n", WEXITSTATUS(status));

	printf("send %s\n", errname(send_fd(sp[0], copy)));
	close(copy);
	fflush(stdout);
	if (write(go[1], "g", 1) != 1)
		return 2;
	waitpid(b, &status, 0);
	printf("B exit %d\n", WEXITSTATUS(status));
	return 0;
}
