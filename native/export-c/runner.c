// SPDX-License-Identifier: GPL-2.0-only
/*
 * The trace runner of the ground-truth VM: one static program that reads a batch of traces in the compact
 * form (src/groundtruth/compact.ts documents it) and runs each as the program `ioptrace export-c` writes
 * for it would, in a forked child that is the trace's supervisor, so nothing of one trace (fds, processes,
 * the shared answers) outlives it. Built as `cc -static runner.c` next to runtime.c.
 *
 *   runner [--timeout SECONDS] BATCH     run every trace; after each, print its status line
 *   runner --dump BATCH                  parse the batch and print it back in the compact form (a test)
 *
 * Status lines: {"runner":"exit","trace":NAME,"status":N}, {"runner":"signal",...,"status":SIG}, or
 * {"runner":"timeout",...} when the trace ran longer than the limit and was killed. A trace whose process
 * cannot be reaped even after SIGKILL (stuck in the kernel) ends the batch: exit status 3.
 */
#include "runtime.c"

#include <time.h>

static const char *const KIND_NAMES[] = {
	"K_SKIP", "K_PROCESS", "K_MMAP", "K_MUNMAP", "K_WRITE", "K_READ", "K_EXIT", "K_RLIMIT", "K_FAULT",
	"K_TEMP_LIMIT", "K_OPEN", "K_IOAS_ALLOC", "K_IOAS_MAP", "K_IOAS_UNMAP", "K_IOAS_COPY", "K_ALLOW_IOVAS",
	"K_HUGE_PAGES", "K_DOMAIN_ATTACH", "K_DOMAIN_DETACH", "K_ACCESS_CREATE", "K_ACCESS_DESTROY",
	"K_ACCESS_PIN", "K_ACCESS_UNPIN", "K_ACCESS_RW", "K_ACCESS_REPLACE", "K_VFIO_UNMAP", "K_CHECK_MAP",
	"K_CHECK_REFS",
};
#define N_KINDS ((int)(sizeof(KIND_NAMES) / sizeof(KIND_NAMES[0])))
_Static_assert(N_KINDS == K_CHECK_REFS + 1, "KIND_NAMES follows enum op_kind");

struct trace {
	char *name;
	int n_ops;
	struct op *ops;
};

static void die(int line, const char *what)
{
	fprintf(stderr, "ioptrace-runner: batch line %d: %s\n", line, what);
	exit(2);
}

/* The next space-separated field of *p (NUL-terminated in place); NULL at the end of the line. */
static char *field(char **p)
{
	char *start = *p, *end;

	if (!start || !*start)
		return NULL;
	end = strchr(start, ' ');
	if (end) {
		*end = 0;
		*p = end + 1;
	} else {
		*p = NULL;
	}
	return start;
}

static long dec_field(char **p, int line, const char *name)
{
	char *f = field(p), *end;
	long v;

	if (!f)
		die(line, name);
	v = strtol(f, &end, 10);
	if (*end)
		die(line, name);
	return v;
}

static uint64_t hex_field(char **p, int line, const char *name)
{
	char *f = field(p), *end;
	uint64_t v;

	if (!f)
		die(line, name);
	v = strtoull(f, &end, 16);
	if (*end)
		die(line, name);
	return v;
}

static void parse_op(char *text, struct op *o, int line)
{
	char *p = text + 2, *kind, *f;
	int k;

	memset(o, 0, sizeof(*o));
	kind = field(&p);
	for (k = 0; kind && k < N_KINDS && strcmp(kind, KIND_NAMES[k]); k++)
		;
	if (!kind || k == N_KINDS)
		die(line, "unknown op kind");
	o->kind = k;
	o->line = (int)dec_field(&p, line, "LINE");
	f = field(&p);
	if (!f)
		die(line, "NAME");
	o->name = strdup(f);
	o->caller = (int)dec_field(&p, line, "CALLER");
	o->a = (int)dec_field(&p, line, "A");
	o->b = (int)dec_field(&p, line, "B");
	o->x = hex_field(&p, line, "X");
	o->y = hex_field(&p, line, "Y");
	o->z = hex_field(&p, line, "Z");
	o->flags = (uint32_t)dec_field(&p, line, "FLAGS");
	o->n = (int)dec_field(&p, line, "N");
	f = field(&p);
	if (!f)
		die(line, "RANGES");
	if (strcmp(f, "-")) {
		int count = 1;
		struct x_range *r;

		for (char *c = f; *c; c++)
			count += *c == ',';
		r = calloc((size_t)count, sizeof(*r));
		for (int i = 0; i < count; i++) {
			char *end;

			r[i].start = strtoull(f, &end, 16);
			if (*end != ':')
				die(line, "RANGES");
			r[i].last = strtoull(end + 1, &end, 16);
			if (*end != ',' && *end)
				die(line, "RANGES");
			f = end + 1;
		}
		o->ranges = r;
	}
	f = field(&p);
	if (!f)
		die(line, "DOMAINS");
	if (strcmp(f, "-")) {
		int count = 1, *d;

		for (char *c = f; *c; c++)
			count += *c == ',';
		d = calloc((size_t)count, sizeof(*d));
		for (int i = 0; i < count; i++) {
			char *end;

			d[i] = (int)strtol(f, &end, 10);
			if (*end != ',' && *end)
				die(line, "DOMAINS");
			f = end + 1;
		}
		o->domains = d;
	}
	/* TEXT is the rest of the line, spaces included. */
	if (!p)
		die(line, "TEXT");
	o->text = strcmp(p, "-") ? strdup(p) : NULL;
}

static struct trace *read_batch(const char *path, int *count)
{
	FILE *in = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	int line = 0, n = 0, cap_traces = 0, at = -1;
	struct trace *traces = NULL;

	if (!in) {
		perror(path);
		exit(2);
	}
	while ((len = getline(&buf, &cap, in)) >= 0) {
		line++;
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = 0;
		if (line == 1) {
			if (strcmp(buf, "ioptrace-batch 1"))
				die(line, "not a batch (expected \"ioptrace-batch 1\")");
			continue;
		}
		if (!len)
			continue;
		if (buf[0] == 'T' && buf[1] == ' ') {
			char *p = buf + 2, *name = field(&p);
			struct trace *t;

			if (at >= 0 || !name)
				die(line, "a trace starts inside another");
			if (n == cap_traces) {
				cap_traces = cap_traces ? 2 * cap_traces : 64;
				traces = realloc(traces, (size_t)cap_traces * sizeof(*traces));
			}
			t = &traces[n++];
			t->name = strdup(name);
			t->n_ops = (int)dec_field(&p, line, "OPS");
			t->ops = calloc((size_t)t->n_ops + 1, sizeof(struct op));
			at = 0;
		} else if (buf[0] == 'E' && !buf[1]) {
			if (at != traces[n - 1].n_ops)
				die(line, "the trace has fewer op lines than its head says");
			at = -1;
		} else if (buf[0] == 'O' && buf[1] == ' ') {
			if (at < 0 || at >= traces[n - 1].n_ops)
				die(line, "an op line outside a trace, or more than its head says");
			parse_op(buf, &traces[n - 1].ops[at++], line);
		} else {
			die(line, "unknown record");
		}
	}
	if (at >= 0)
		die(line, "the batch ends inside a trace");
	free(buf);
	fclose(in);
	*count = n;
	return traces;
}

static void dump(const struct trace *traces, int n)
{
	printf("ioptrace-batch 1\n");
	for (int t = 0; t < n; t++) {
		printf("T %s %d\n", traces[t].name, traces[t].n_ops);
		for (int i = 0; i < traces[t].n_ops; i++) {
			const struct op *o = &traces[t].ops[i];

			printf("O %s %d %s %d %d %d %llx %llx %llx %u %d ", KIND_NAMES[o->kind], o->line, o->name,
			       o->caller, o->a, o->b, (unsigned long long)o->x, (unsigned long long)o->y,
			       (unsigned long long)o->z, o->flags, o->n);
			if (o->ranges)
				for (int r = 0; r < o->n; r++)
					printf("%s%llx:%llx", r ? "," : "", (unsigned long long)o->ranges[r].start,
					       (unsigned long long)o->ranges[r].last);
			else
				printf("-");
			printf(" ");
			if (o->domains)
				for (int d = 0; d < o->n; d++)
					printf("%s%d", d ? "," : "", o->domains[d]);
			else
				printf("-");
			printf(" %s\n", o->text ? o->text : "-");
		}
		printf("E\n");
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait for `pid` up to `seconds`; 1 when it ended (status in *status), 0 when it is still running. */
static int wait_for(pid_t pid, double seconds, int *status)
{
	double end = now() + seconds;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 1;
		if (r < 0)
			return 1;
		if (now() >= end)
			return 0;
		usleep(2000);
	}
}

static void status_line(const char *how, const char *name, int status, int with_status)
{
	printf("{\"runner\":\"%s\",\"trace\":", how);
	json_string(name);
	if (with_status)
		printf(",\"status\":%d", status);
	printf("}\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	double timeout = 120;
	int dump_only = 0, n;
	const char *path = NULL;
	struct trace *traces;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dump"))
			dump_only = 1;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atof(argv[++i]);
		else
			path = argv[i];
	}
	if (!path) {
		fprintf(stderr, "usage: runner [--timeout SECONDS] [--dump] BATCH\n");
		return 2;
	}
	traces = read_batch(path, &n);
	if (dump_only) {
		dump(traces, n);
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int t = 0; t < n; t++) {
		int status = 0;
		pid_t pid;

		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			perror("ioptrace-runner: fork");
			return 2;
		}
		if (pid == 0) {
			/* Its own process group: a timeout kills the trace's supervisor and its trace processes. */
			setpgid(0, 0);
			_exit(run_trace(traces[t].name, traces[t].ops, traces[t].n_ops));
		}
		setpgid(pid, pid);
		if (!wait_for(pid, timeout, &status)) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			if (!wait_for(pid, 10, &status)) {
				status_line("timeout", traces[t].name, 0, 0);
				fprintf(stderr, "ioptrace-runner: trace %s cannot be reaped; stopping the batch\n",
					traces[t].name);
				return 3;
			}
			status_line("timeout", traces[t].name, 0, 0);
		} else if (WIFSIGNALED(status)) {
			status_line("signal", traces[t].name, WTERMSIG(status), 1);
		} else {
			status_line("exit", traces[t].name, WEXITSTATUS(status), 1);
		}
		/* Trace processes left behind by a killed supervisor: reap what is already gone. */
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
		kill(-pid, SIGKILL);
	}
	return 0;
}
