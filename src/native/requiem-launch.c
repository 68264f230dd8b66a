/*
 * requiem-launch: starts one command inside the Linux sandbox of Invoke-RequiemExec with a single exec.
 *
 *   requiem-launch [--userns] [--pidns] [--netns | --join-netns PATH --netns-inode N] [--cgroup-procs PATH]
 *                  [--as BYTES] [--cpu SECONDS] [--nofile N] [--nproc N] -- COMMAND [ARG...]
 *   requiem-launch --hold-netns
 *   requiem-launch --version
 *
 * It does with the kernel's own calls what the fallback chain does with util-linux and coreutils
 * (unshare --fork --pid --kill-child --net, a sh init, prlimit, env --default-signal=PIPE):
 *   1. joins the run's pids cgroup (writes 0 to PATH: this process and everything it forks is counted);
 *   2. unshare(CLONE_NEWPID [| CLONE_NEWNET]) or setns() into a prepared empty network namespace (checked by inode,
 *      so a reused pid can never lead into another namespace); without root,
 *      --userns first makes a user namespace that maps the caller's uid and gid to themselves (so the namespaces
 *      can be made; the command keeps its own identity and gets no capabilities);
 *   3. forks the namespace's init (PID 1), which dies with this process (PR_SET_PDEATHSIG), forks the command
 *      as PID 2 so it keeps normal signal semantics, reaps orphans, and exits with the command's status;
 *      when init exits the kernel kills everything left in the namespace (setsid escapees included);
 *   4. in the command's process: every signal disposition back to default and an empty signal mask (the .NET host
 *      ignores SIGPIPE and that would be inherited), the rlimits (soft = hard), and, when it runs as root, the
 *      capabilities that would let it leave its namespaces dropped from every set (CAP_SYS_ADMIN: setns/unshare/
 *      mount; CAP_NET_ADMIN with a network namespace: bringing interfaces up); then execve — no window in which the
 *      command runs unlimited or privileged enough to undo the sandbox.
 * --hold-netns makes an empty network namespace, prints "ready" and keeps it alive until its stdin reaches EOF
 * (the engine holds the pipe; runs join the namespace instead of paying for a new one each time).
 * Exit status: the command's exit code, 128+N when it died of signal N, 125 when the sandbox could not be set up,
 * 126/127 when the command could not be executed (message on stderr, prefixed "requiem-launch:").
 * --version prints "requiem-launch 2" and runs nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* From <linux/capability.h>, spelled out so that the file also builds against musl (musl-gcc sees no kernel headers). */
#define CAP_NET_ADMIN 12
#define CAP_SYS_ADMIN 21
#define LINUX_CAPABILITY_VERSION_3 0x20080522
struct cap_header { unsigned int version; int pid; };
struct cap_data { unsigned int effective, permitted, inheritable; };

#define SETUP_FAILED 125

struct limit { int resource; const char *name; int set; rlim_t value; };

static void fail(const char *what, const char *detail)
{
    dprintf(2, "requiem-launch: %s%s%s: %s\n", what, detail ? " " : "", detail ? detail : "", strerror(errno));
    _exit(SETUP_FAILED);
}

static int parse_u64(const char *s, rlim_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *out = (rlim_t)v;
    return 0;
}

static void reset_signals(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL/SIGSTOP/reserved: fine */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("open", path);
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) fail("write", path);
    close(fd);
}

static int status_of(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return SETUP_FAILED;
}

/* Removes a capability from the bounding set (so execve cannot give it back) and from the current sets. */
static void drop_capabilities(const int *caps, int n)
{
    struct cap_header header = { LINUX_CAPABILITY_VERSION_3, 0 };
    struct cap_data data[2];
    if (syscall(SYS_capget, &header, data) != 0) fail("capget", NULL);
    for (int i = 0; i < n; i++) {
        if (prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0) != 0) fail("prctl", "PR_CAPBSET_DROP");
        unsigned int bit = 1u << (caps[i] % 32);
        data[caps[i] / 32].effective &= ~bit;
        data[caps[i] / 32].permitted &= ~bit;
        data[caps[i] / 32].inheritable &= ~bit;
    }
    if (syscall(SYS_capset, &header, data) != 0) fail("capset", NULL);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static int drop_caps[2];
static int ndrop_caps;

static void exec_command(char **argv, struct limit *limits, int nlimits)
{
    if (ndrop_caps > 0) drop_capabilities(drop_caps, ndrop_caps);
    for (int i = 0; i < nlimits; i++) {
        if (!limits[i].set) continue;
        struct rlimit rl = { limits[i].value, limits[i].value };
        if (setrlimit(limits[i].resource, &rl) != 0) fail("setrlimit", limits[i].name);
    }
    reset_signals();
    execve(argv[0], argv, environ);
    int code = errno == ENOENT || errno == ENOTDIR ? 127 : 126;
    dprintf(2, "requiem-launch: cannot execute %s: %s\n", argv[0], strerror(errno));
    _exit(code);
}

/* PID 1 of the run's namespace: start the command as PID 2, reap everything, exit with the command's status. */
static void run_init(char **argv, struct limit *limits, int nlimits, int parent_alive_fd)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl", "PR_SET_PDEATHSIG");
    struct pollfd p = { parent_alive_fd, POLLIN, 0 };
    if (poll(&p, 1, 0) > 0) _exit(SETUP_FAILED); /* the launcher died before the death signal was armed */
    close(parent_alive_fd);

    pid_t cmd = fork();
    if (cmd < 0) fail("fork", "command");
    if (cmd == 0) exec_command(argv, limits, nlimits);
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w == cmd) _exit(status_of(st));
        if (w < 0 && errno != EINTR) _exit(SETUP_FAILED);
    }
}

static int hold_netns(void)
{
    if (unshare(CLONE_NEWNET) != 0) fail("unshare", "CLONE_NEWNET");
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) return 0;
    }
}

int main(int argc, char **argv)
{
    int pidns = 0, netns = 0, userns = 0;
    const char *join_netns = NULL, *cgroup_procs = NULL;
    rlim_t netns_inode = 0;
    struct limit limits[] = {
        { RLIMIT_AS, "--as", 0, 0 },
        { RLIMIT_CPU, "--cpu", 0, 0 },
        { RLIMIT_NOFILE, "--nofile", 0, 0 },
        { RLIMIT_NPROC, "--nproc", 0, 0 },
    };
    const int nlimits = (int)(sizeof limits / sizeof limits[0]);
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++; break; }
        if (strcmp(a, "--pidns") == 0) { pidns = 1; continue; }
        if (strcmp(a, "--netns") == 0) { netns = 1; continue; }
        if (strcmp(a, "--userns") == 0) { userns = 1; continue; }
        if (strcmp(a, "--version") == 0) { printf("requiem-launch 2\n"); return 0; }
        if (strcmp(a, "--hold-netns") == 0) return hold_netns();
        if (i + 1 >= argc) { dprintf(2, "requiem-launch: %s needs a value\n", a); return SETUP_FAILED; }
        if (strcmp(a, "--join-netns") == 0) { join_netns = argv[++i]; continue; }
        if (strcmp(a, "--cgroup-procs") == 0) { cgroup_procs = argv[++i]; continue; }
        if (strcmp(a, "--netns-inode") == 0) {
            if (parse_u64(argv[++i], &netns_inode) != 0 || netns_inode == 0) {
                dprintf(2, "requiem-launch: --netns-inode: not a positive integer: %s\n", argv[i]);
                return SETUP_FAILED;
            }
            continue;
        }
        int matched = 0;
        for (int l = 0; l < nlimits; l++) {
            if (strcmp(a, limits[l].name) != 0) continue;
            if (parse_u64(argv[++i], &limits[l].value) != 0) {
                dprintf(2, "requiem-launch: %s: not a non-negative integer: %s\n", a, argv[i]);
                return SETUP_FAILED;
            }
            limits[l].set = matched = 1;
        }
        if (!matched) { dprintf(2, "requiem-launch: unknown option %s\n", a); return SETUP_FAILED; }
    }
    if (i >= argc) { dprintf(2, "requiem-launch: no command after --\n"); return SETUP_FAILED; }
    char **command = argv + i;

    if (cgroup_procs) write_file(cgroup_procs, "0");
    if (userns) {
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWUSER) != 0) fail("unshare", "CLONE_NEWUSER");
        char map[64];
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
        write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
        write_file("/proc/self/gid_map", map);
    }
    if (join_netns) {
        if (netns_inode == 0) { dprintf(2, "requiem-launch: --join-netns needs --netns-inode\n"); return SETUP_FAILED; }
        int fd = open(join_netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail("open", join_netns);
        struct stat st;
        if (fstat(fd, &st) != 0) fail("stat", join_netns);
        if ((rlim_t)st.st_ino != netns_inode) {
            errno = ESTALE;
            fail("the network namespace to join is not the expected one:", join_netns);
        }
        if (setns(fd, CLONE_NEWNET) != 0) fail("setns", join_netns);
        close(fd);
    }
    if (!userns && geteuid() == 0) {
        drop_caps[ndrop_caps++] = CAP_SYS_ADMIN;
        if (netns || join_netns) drop_caps[ndrop_caps++] = CAP_NET_ADMIN;
    }
    int flags = (pidns ? CLONE_NEWPID : 0) | (netns && !join_netns ? CLONE_NEWNET : 0);
    if (flags && unshare(flags) != 0) fail("unshare", pidns ? "CLONE_NEWPID" : "CLONE_NEWNET");
    if (!pidns) exec_command(command, limits, nlimits);

    int alive[2];
    if (pipe2(alive, O_CLOEXEC) != 0) fail("pipe", NULL);
    pid_t init = fork();
    if (init < 0) fail("fork", "init");
    if (init == 0) {
        close(alive[1]);
        run_init(command, limits, nlimits, alive[0]);
    }
    close(alive[0]);
    for (;;) {
        int st;
        if (waitpid(init, &st, 0) == init) return status_of(st);
        if (errno != EINTR) fail("waitpid", "init");
    }
}
