/* bench/scale-floor.c: the kernel's floor under bench/scale.py.
 *
 *   scale-floor N BRIDGE PREFIX [ROOT]
 *
 * Forks N children at once, each: a new network namespace, a veth pair (host end on BRIDGE,
 * peer created as eth0 in the new namespace), host end up, lo up, eth0 PREFIX.(i/250).(i%250+2)/16
 * up, default route via PREFIX.0.1. With ROOT, then what the rest of the bench chain does
 * (userns --map-root, ipcns, utsns, pidns, mntns --rootfs ROOT), the cheapest way: one unshare,
 * the maps, the hostname, a fork, bind ROOT, /proc, pivot_root, and the payload
 * `/bin/sh -c 'echo up; exec sleep 1000'`. Without ROOT the child writes "up" itself and waits.
 * The parent reads N "up" lines from the shared pipe and prints the seconds it took, then kills
 * the children. Raw netlink, no library: what is measured is the kernel plus fork and exec.
 * Run it as root inside a throwaway network namespace that has BRIDGE (bench/run.sh's NETHOST).
 * Build: cc -O2 -static -o scale-floor bench/scale-floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct req {
	struct nlmsghdr n;
	char buf[1024];
};

static void die(const char *what)
{
	fprintf(stderr, "scale-floor: %s: %s\n", what, strerror(errno));
	_exit(125);
}

static struct rtattr *attr(struct nlmsghdr *n, int type, const void *data, int len)
{
	struct rtattr *a = (struct rtattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void end(struct nlmsghdr *n, struct rtattr *nest)
{
	nest->rta_len = (char *)n + n->nlmsg_len - (char *)nest;
}

/* Sends one request and waits for its ack. */
static void talk(int fd, struct nlmsghdr *n, const char *what)
{
	char buf[4096];
	n->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (send(fd, n, n->nlmsg_len, 0) < 0)
		die(what);
	ssize_t got = recv(fd, buf, sizeof buf, 0);
	if (got < 0)
		die(what);
	struct nlmsghdr *r = (struct nlmsghdr *)buf;
	if (r->nlmsg_type == NLMSG_ERROR) {
		int e = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
		if (e) {
			errno = -e;
			die(what);
		}
	}
}

static int rtnl(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		die("netlink socket");
	return fd;
}

static void link_msg(struct req *r, int index, unsigned flags)
{
	memset(r, 0, sizeof *r);
	r->n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	r->n.nlmsg_type = RTM_NEWLINK;
	r->n.nlmsg_flags = flags;
	struct ifinfomsg *i = NLMSG_DATA(&r->n);
	i->ifi_index = index;
}

static void set_up(int fd, int index, const char *name)
{
	struct req r;
	link_msg(&r, index, 0);
	struct ifinfomsg *i = NLMSG_DATA(&r.n);
	i->ifi_flags = i->ifi_change = IFF_UP;
	if (name)
		attr(&r.n, IFLA_IFNAME, name, strlen(name) + 1);
	talk(fd, &r.n, "link up");
}

static void veth(int host, const char *name, int bridge, int netns)
{
	struct req r;
	link_msg(&r, 0, NLM_F_CREATE | NLM_F_EXCL);
	attr(&r.n, IFLA_IFNAME, name, strlen(name) + 1);
	attr(&r.n, IFLA_MASTER, &bridge, 4);
	struct rtattr *info = attr(&r.n, IFLA_LINKINFO, NULL, 0);
	attr(&r.n, IFLA_INFO_KIND, "veth", 4);
	struct rtattr *data = attr(&r.n, IFLA_INFO_DATA, NULL, 0);
	struct rtattr *peer = attr(&r.n, VETH_INFO_PEER, NULL, 0);
	r.n.nlmsg_len += sizeof(struct ifinfomsg); /* the peer's ifinfomsg, zero */
	attr(&r.n, IFLA_IFNAME, "eth0", 5);
	attr(&r.n, IFLA_NET_NS_FD, &netns, 4);
	end(&r.n, peer);
	end(&r.n, data);
	end(&r.n, info);
	talk(host, &r.n, "veth");
}

static void address(int fd, int index, struct in_addr ip)
{
	struct req r;
	memset(&r, 0, sizeof r);
	r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	r.n.nlmsg_type = RTM_NEWADDR;
	r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	struct ifaddrmsg *a = NLMSG_DATA(&r.n);
	a->ifa_family = AF_INET;
	a->ifa_prefixlen = 16;
	a->ifa_index = index;
	attr(&r.n, IFA_LOCAL, &ip, 4);
	attr(&r.n, IFA_ADDRESS, &ip, 4);
	talk(fd, &r.n, "address");
}

static void route(int fd, struct in_addr gw)
{
	struct req r;
	memset(&r, 0, sizeof r);
	r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	r.n.nlmsg_type = RTM_NEWROUTE;
	r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	struct rtmsg *m = NLMSG_DATA(&r.n);
	m->rtm_family = AF_INET;
	m->rtm_table = RT_TABLE_MAIN;
	m->rtm_protocol = RTPROT_BOOT;
	m->rtm_scope = RT_SCOPE_UNIVERSE;
	m->rtm_type = RTN_UNICAST;
	attr(&r.n, RTA_GATEWAY, &gw, 4);
	talk(fd, &r.n, "route");
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		die(path);
	close(fd);
}

/* userns --map-root, ipcns, utsns, pidns, mntns --rootfs ROOT, then the payload. */
static void chain(const char *root)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNS))
		die("unshare");
	put("/proc/self/uid_map", "0 0 1");
	put("/proc/self/setgroups", "deny");
	put("/proc/self/gid_map", "0 0 1");
	if (sethostname("c", 1))
		die("sethostname");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid > 0) {
		int status;
		waitpid(pid, &status, 0);
		_exit(0);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* the payload goes when its chain is killed */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount(root, root, NULL, MS_BIND | MS_REC, NULL) || chdir(root) ||
	    mount("proc", "proc", "proc", 0, NULL) ||
	    syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir("/"))
		die("root");
	execl("/bin/sh", "sh", "-c", "echo up; exec sleep 1000", (char *)NULL);
	die("exec");
}

static void container(int i, int bridge, const char *prefix, const char *root)
{
	char name[IFNAMSIZ], ip[32], gw[32];
	struct in_addr a, g;
	snprintf(name, sizeof name, "fl%d", i);
	snprintf(ip, sizeof ip, "%s.%d.%d", prefix, i / 250, i % 250 + 2);
	snprintf(gw, sizeof gw, "%s.0.1", prefix);
	inet_pton(AF_INET, ip, &a);
	inet_pton(AF_INET, gw, &g);
	int host = rtnl();
	if (unshare(CLONE_NEWNET))
		die("unshare(CLONE_NEWNET)");
	int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		die("/proc/self/ns/net");
	veth(host, name, bridge, ns);
	set_up(host, 0, name);
	int inner = rtnl();
	set_up(inner, 1, NULL);
	int eth0 = if_nametoindex("eth0");
	if (!eth0)
		die("eth0");
	address(inner, eth0, a);
	set_up(inner, eth0, NULL);
	route(inner, g);
	close(host);
	close(inner);
	close(ns);
	if (root)
		chain(root);
	if (write(1, "up\n", 3) < 0)
		die("write");
	pause();
	_exit(0);
}

/* CPU time of every other process of this process group (the containers, as bench/scale.py
 * counts them): /proc/PID/schedstat in ns (utime and stime are whole ticks, 0 for a short
 * start), plus cutime and cstime for the children they waited for. */
static double group_cpu(void)
{
	long ticks = 0;
	double ns = 0;
	char path[64], buf[1024];
	pid_t self = getpid(), group = getpgrp();
	DIR *proc = opendir("/proc");
	struct dirent *e;
	while (proc && (e = readdir(proc))) {
		pid_t pid = atoi(e->d_name);
		if (pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof path, "/proc/%d/stat", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t got = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (got <= 0)
			continue;
		buf[got] = 0;
		char *p = strrchr(buf, ')');
		long f[15];
		/* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
		 * utime stime cutime cstime */
		if (!p || sscanf(p + 2, "%*c %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld",
				 &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9],
				 &f[10], &f[11], &f[12], &f[13]) != 14 || f[1] != group)
			continue;
		ticks += f[12] + f[13];
		snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
		FILE *s = fopen(path, "re");
		double run = 0;
		if (s && fscanf(s, "%lf", &run) == 1)
			ns += run;
		if (s)
			fclose(s);
	}
	if (proc)
		closedir(proc);
	return ns / 1e9 + (double)ticks / sysconf(_SC_CLK_TCK);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: scale-floor N BRIDGE PREFIX [ROOT]\n");
		return 125;
	}
	setpgid(0, 0); /* a process group of its own: the containers' CPU is counted by it */
	int n = atoi(argv[1]);
	int bridge = if_nametoindex(argv[2]);
	if (!bridge)
		die(argv[2]);
	int pipefd[2];
	if (pipe(pipefd))
		die("pipe");
	pid_t *pids = calloc(n, sizeof *pids);
	double start = now();
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			close(pipefd[0]);
			dup2(pipefd[1], 1);
			container(i, bridge, argv[3], argc > 4 ? argv[4] : NULL);
		}
	}
	double launched = now();
	close(pipefd[1]);
	int up = 0;
	char buf[4096];
	ssize_t got;
	while (up < n && (got = read(pipefd[0], buf, sizeof buf)) > 0)
		for (ssize_t k = 0; k < got; k++)
			up += buf[k] == '\n';
	double done = now();
	printf("{\"n\": %d, \"up\": %d, \"launch_seconds\": %.3f, \"up_seconds\": %.3f, "
	       "\"containers_cpu_seconds\": %.2f}\n",
	       n, up, launched - start, done - start, group_cpu());
	fflush(stdout);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	return up == n ? 0 : 1;
}
