/*
 * requiem-launch: starts one command inside the Linux sandbox of Invoke-RequiemExec with a single exec.
 *
 *   requiem-launch [--userns] [--pidns] [--netns | --join-netns PATH --netns-inode N] [--cgroup-procs PATH]
 *                  [--as BYTES] [--cpu SECONDS] [--nofile N] [--nproc N] [--seccomp]
 *                  [--root ro-host|tmpfs] [--ro-bind PATH] [--bind PATH] [--tmpfs PATH] [--hide PATH] [--dev PATH]
 *                  -- COMMAND [ARG...]
 *   requiem-launch [--userns] [--pidns] ... --join-view PATH --view-inode N [the view's options as above] -- COMMAND [ARG...]
 *   requiem-launch --hold-view --root ro-host|tmpfs [--ro-bind PATH] [--bind PATH] [--tmpfs PATH] [--hide PATH] [--dev PATH]
 *   requiem-launch --hold-netns
 *   requiem-launch --print-seccomp
 *   requiem-launch --version
 *
 * It does with the kernel's own calls what the fallback chain does with util-linux and coreutils
 * (unshare --fork --pid --mount-proc --kill-child --net, a sh init, prlimit, setpriv, env --default-signal=PIPE):
 *   1. joins the run's pids cgroup (writes 0 to PATH: this process and everything it forks is counted);
 *   2. without root, --userns first makes a user namespace that maps the caller's uid and gid to themselves (so the
 *      namespaces can be made; the command keeps its own identity); setns() into a prepared empty network namespace
 *      (checked by inode, so a reused pid can never lead into another namespace);
 *   3. unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWCGROUP [| CLONE_NEWNET]) with every mount made private;
 *   4. starts the namespace's init (PID 1), which dies with this process (PR_SET_PDEATHSIG), builds the command's view
 *      of the filesystem (below), starts the command as PID 2 so it keeps normal signal semantics, reaps orphans, and
 *      exits with the command's status; when init exits the kernel kills everything left in the namespace;
 *   5. in the command's process: every signal disposition back to default and an empty signal mask (the .NET host
 *      ignores SIGPIPE and that would be inherited), the rlimits (soft = hard), EVERY capability dropped from every
 *      set (bounding, ambient, inheritable, permitted, effective) and no_new_privs, so a root command is an ordinary
 *      process that cannot undo any of this (no mount, setns, ptrace of others, module loading, ...); with --seccomp
 *      a seccomp-bpf filter (install_seccomp) that refuses those calls outright, whoever makes them; then execve.
 * The filesystem view (built by init, inside the new PID namespace so that /proc is the namespace's own):
 *   without --root: the host's tree, with a fresh /proc of the command's PID namespace, /proc/sys and
 *     /proc/sysrq-trigger read-only and an empty read-only tmpfs over /sys/fs/cgroup (the run cannot write pids.max
 *     or leave its cgroup);
 *   --root ro-host: a new root that is the host's tree bound read-only (recursively), --root tmpfs: an empty root;
 *     then, in order, --tmpfs (an empty writable tmpfs), --hide (an empty tmpfs, read-only at the end), --dev (a
 *     minimal /dev: null zero full random urandom tty, /dev/shm, a devpts of its own, fd links), --bind
 *     (read-write bind of a host path at the same path), --ro-bind (read-only; a symlink to a directory is recreated
 *     as the symlink), the /proc, /sys/fs/cgroup treatment above, a tmpfs root made read-only, then pivot_root into
 *     it and the old root detached: nothing outside the new root can be reached again. Every host source is opened
 *     (O_PATH) before anything is mounted and bound through /proc/self/fd, so the new root is assembled over an
 *     existing directory of the private namespace (/tmp) and entered with one pivot_root (it walks every thread on
 *     the host, so it is not cheap) and one detach.
 * A held view (root callers; Linux 5.2 for open_tree/move_mount): --hold-view builds, in a mount namespace of its own,
 *   the part of a view that is the same for every run of a layout: the new root, the read-only binds and symlinks, the
 *   hidden paths, /dev's nodes and links (its tmpfs then read-only), and empty mount points for what each run mounts
 *   itself (the --tmpfs paths, the --bind paths, /proc, /dev/shm, /dev/pts); it pivots into it, detaches the old root,
 *   prints what it bound ("bind MAJOR MINOR INO" or "link TARGET" per held --ro-bind, in order), "ready", waits for EOF on
 *   stdin (PR_SET_PDEATHSIG too). The engine opens /proc/PID/ns/mnt and keeps that descriptor: the namespace lives as
 *   long as it. A run with --join-view PATH --view-inode N (the same view options) captures its --bind trees in the
 *   host's namespace (open_tree OPEN_TREE_CLONE|AT_RECURSIVE), joins the view (setns, after checking the inode, so a
 *   closed descriptor whose number was reused can never lead into another namespace), and unshare(CLONE_NEWNS) copies
 *   it; init then mounts only the per-run parts: --tmpfs, /dev/shm, devpts, the captured trees (move_mount, made
 *   private) and /proc. A copy copies mounts, not file systems: the root tmpfs and /dev's tmpfs are shared by every
 *   copy, so they are read-only and a run creates nothing in them (a missing mount point there fails with EROFS).
 *   A --ro-bind at or below a --bind path (a declared input in the workspace) is the run's own too: captured with
 *   open_tree and made read-only per run. Any other read-only bind, hidden path or /dev below a --tmpfs or --bind
 *   path cannot be held (refused).
 * --hold-netns makes an empty network namespace, prints "ready" and keeps it alive until its stdin reaches EOF
 * (the engine holds the pipe; runs join the namespace instead of paying for a new one each time).
 * Exit status: the command's exit code, 128+N when it died of signal N, 125 when the sandbox could not be set up,
 * 126/127 when the command could not be executed (message on stderr, prefixed "requiem-launch:").
 * --print-seccomp writes the seccomp program (struct sock_filter array) to stdout and runs nothing: the engine builds
 * the same bytes for bubblewrap's --seccomp (SeccompFilter.cs), and a test compares the two.
 * --version prints "requiem-launch 4" and runs nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* From the kernel's uapi headers, spelled out so that the file also builds against musl (musl-gcc sees no kernel headers). */
#define LINUX_CAPABILITY_VERSION_3 0x20080522
struct cap_header { unsigned int version; int pid; };
struct cap_data { unsigned int effective, permitted, inheritable; };
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif
/* mount_setattr(2) (Linux 5.12): the same number on x86_64 and aarch64 (the unified table from 424 on). */
#define SYS_MOUNT_SETATTR 442
#define MOUNT_ATTR_RDONLY 0x00000001
#define AT_RECURSIVE_FLAG 0x8000
struct mount_attr_v0 { uint64_t attr_set, attr_clr, propagation, userns_fd; };
/* open_tree(2) and move_mount(2) (Linux 5.2), the same numbers on x86_64 and aarch64. */
#define SYS_OPEN_TREE 428
#define SYS_MOVE_MOUNT 429
#define OPEN_TREE_CLONE_FLAG 1
#define MOVE_MOUNT_F_EMPTY_PATH_FLAG 0x00000004
#define MOVE_MOUNT_T_SYMLINKS_FLAG 0x00000010

/* seccomp-bpf, from <linux/filter.h>, <linux/seccomp.h> and <linux/audit.h>. */
struct sock_filter_v { uint16_t code; uint8_t jt, jf; uint32_t k; };
struct sock_fprog_v { unsigned short len; struct sock_filter_v *filter; };
#define BPF_LD_W_ABS 0x20
#define BPF_JEQ_K 0x15
#define BPF_JGE_K 0x35
#define BPF_JSET_K 0x45
#define BPF_RET_K 0x06
#define SECCOMP_MODE_FILTER_V 2
#define SECCOMP_RET_ALLOW_V 0x7fff0000u
#define SECCOMP_RET_ERRNO_V 0x00050000u
#define SECCOMP_RET_KILL_PROCESS_V 0x80000000u
#define SECCOMP_DATA_NR 0
#define SECCOMP_DATA_ARCH 4
#define SECCOMP_DATA_ARG0 16 /* low 32 bits of args[0] on a little-endian machine */
#define NAMESPACE_CLONE_FLAGS 0x7e020000u /* CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */

#define SETUP_FAILED 125
#define MAX_MOUNT_OPS 512

struct limit { int resource; const char *name; int set; rlim_t value; };

enum op_kind { OP_BIND, OP_RO_BIND, OP_TMPFS, OP_HIDE, OP_DEV };
#define DEV_NODES 6
static const char *const dev_nodes[DEV_NODES] = { "/null", "/zero", "/full", "/random", "/urandom", "/tty" };
/* fd, is_dir, link (a bind's source) and dev_fd (--dev's nodes) are filled by open_sources before anything is mounted. */
struct mount_op { enum op_kind kind; const char *path; int fd; int is_dir; char *link; int dev_fd[DEV_NODES]; dev_t dev; ino_t ino; int linked; };

static struct mount_op ops[MAX_MOUNT_OPS];
static int nops;
static const char *root_kind; /* NULL: the host's tree in place; "ro-host" or "tmpfs": a new root, pivoted into */
/* --hold-view: build only the per-layout part of the view (held); --join-view: a run's per-run part over a copy of it. */
static int holding_view, joining_view;
static int last_cap = 63;

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

/* Every capability out of every set: bounding (so execve of a setuid-root or file-capability binary, or of anything
 * as uid 0, cannot give any back), ambient, inheritable, permitted, effective; and no_new_privs. */
static void drop_all_capabilities(void)
{
    for (int cap = 0; cap <= last_cap; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail("prctl", "PR_CAPBSET_DROP");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail("prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
    struct cap_header header = { LINUX_CAPABILITY_VERSION_3, 0 };
    struct cap_data data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) != 0) fail("capset", NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("prctl", "PR_SET_NO_NEW_PRIVS");
}

/*
 * The seccomp filter: allow by default; EPERM for the calls a build step never needs and that would undo or escape
 * the sandbox. Hand-built BPF rather than libseccomp: libseccomp is not in musl's world (a static musl build would
 * need libseccomp rebuilt against musl), and the program below is short enough to read in full.
 * The architecture is checked first (a 32-bit int 0x80 call on x86_64 carries AUDIT_ARCH_I386 and other syscall
 * numbers: such calls kill the process), and x32 numbers (bit 30) are refused; any other build architecture has no
 * filter and --seccomp fails, so the probe reports seccomp_bpf unsupported, never silently off.
 */
#if defined(__x86_64__)
#define SECCOMP_ARCH 0xc000003eu /* AUDIT_ARCH_X86_64 */
static const uint32_t denied_calls[] = {
    165, 166, 155,                /* mount, umount2, pivot_root */
    428, 429, 430, 431, 432, 433, 442, /* open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr */
    272, 308,                     /* unshare, setns */
    101, 310, 311,                /* ptrace, process_vm_readv, process_vm_writev */
    246, 320,                     /* kexec_load, kexec_file_load */
    175, 313, 176,                /* init_module, finit_module, delete_module */
    321, 298,                     /* bpf, perf_event_open */
    250, 248, 249,                /* keyctl, add_key, request_key */
    304, 169, 167, 168, 323,      /* open_by_handle_at, reboot, swapon, swapoff, userfaultfd */
};
#define NR_CLONE 56
#define NR_CLONE3 435
#elif defined(__aarch64__)
#define SECCOMP_ARCH 0xc00000b7u /* AUDIT_ARCH_AARCH64 */
static const uint32_t denied_calls[] = {
    40, 39, 41,                   /* mount, umount2, pivot_root */
    428, 429, 430, 431, 432, 433, 442, /* open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr */
    97, 268,                      /* unshare, setns */
    117, 270, 271,                /* ptrace, process_vm_readv, process_vm_writev */
    104, 294,                     /* kexec_load, kexec_file_load */
    105, 273, 106,                /* init_module, finit_module, delete_module */
    280, 241,                     /* bpf, perf_event_open */
    219, 217, 218,                /* keyctl, add_key, request_key */
    265, 142, 224, 225, 282,      /* open_by_handle_at, reboot, swapon, swapoff, userfaultfd */
};
#define NR_CLONE 220
#define NR_CLONE3 435
#endif

static int use_seccomp;

/* The denied calls are looked up by binary search (a leaf checks up to this many with JEQ): the kernel evaluates the
 * program for every syscall number when the filter is installed (its per-number action cache), so a linear list of 30
 * cost about 0.1 ms per run; the search takes a few instructions per number. SeccompFilter.cs builds the same bytes. */
#define SECCOMP_LEAF 3

static int search_size(int count)
{
    return count <= SECCOMP_LEAF ? count : 1 + search_size(count / 2) + search_size(count - count / 2);
}

/* Emits the search over sorted[0, count) at prog[at]: JGE splits, JEQ leaves jumping to deny when equal; a leaf's last
 * JEQ goes on to `next` when not equal. Returns the index after it. */
static int emit_search(struct sock_filter_v *prog, int at, const uint32_t *sorted, int count, int deny, int next)
{
    if (count <= SECCOMP_LEAF) {
        for (int i = 0; i < count; i++, at++) {
            int last = i == count - 1;
            prog[at] = (struct sock_filter_v){ BPF_JEQ_K, (uint8_t)(deny - at - 1), (uint8_t)(last ? next - at - 1 : 0), sorted[i] };
        }
        return at;
    }
    int half = count / 2;
    prog[at] = (struct sock_filter_v){ BPF_JGE_K, (uint8_t)search_size(half), 0, sorted[half] };
    at = emit_search(prog, at + 1, sorted, half, deny, next);
    return emit_search(prog, at, sorted + half, count - half, deny, next);
}

/* Fills prog (room for 128) and returns the number of instructions; 0 where this architecture has no filter. */
static unsigned short build_seccomp(struct sock_filter_v *prog)
{
#ifdef SECCOMP_ARCH
    unsigned short n = 0;
#define STMT(c, k) (prog[n++] = (struct sock_filter_v){ (c), 0, 0, (k) })
#define JUMP(c, k, t, f) (prog[n++] = (struct sock_filter_v){ (c), (t), (f), (k) })
    STMT(BPF_LD_W_ABS, SECCOMP_DATA_ARCH);
    JUMP(BPF_JEQ_K, SECCOMP_ARCH, 1, 0);
    STMT(BPF_RET_K, SECCOMP_RET_KILL_PROCESS_V);
    STMT(BPF_LD_W_ABS, SECCOMP_DATA_NR);
#if defined(__x86_64__)
    JUMP(BPF_JGE_K, 0x40000000u, 0, 1); /* x32 */
    STMT(BPF_RET_K, SECCOMP_RET_ERRNO_V | EPERM);
#endif
    uint32_t sorted[sizeof denied_calls / sizeof denied_calls[0]];
    int count = (int)(sizeof denied_calls / sizeof denied_calls[0]);
    memcpy(sorted, denied_calls, sizeof sorted);
    for (int i = 1; i < count; i++) {
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            uint32_t t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    }
    /* After the search: clone3 passes its flags in memory the filter cannot read, and ENOSYS makes libc fall back to
     * clone; clone with a namespace flag is unshare by another name. */
    int tail = n + search_size(count), deny = tail + 5;
    n = (unsigned short)emit_search(prog, n, sorted, count, deny, tail);
    JUMP(BPF_JEQ_K, NR_CLONE3, 0, 1);
    STMT(BPF_RET_K, SECCOMP_RET_ERRNO_V | ENOSYS);
    JUMP(BPF_JEQ_K, NR_CLONE, 0, 3);
    STMT(BPF_LD_W_ABS, SECCOMP_DATA_ARG0);
    JUMP(BPF_JSET_K, NAMESPACE_CLONE_FLAGS, 0, 1);
    STMT(BPF_RET_K, SECCOMP_RET_ERRNO_V | EPERM); /* deny: the search's matches land here */
    STMT(BPF_RET_K, SECCOMP_RET_ALLOW_V);
#undef STMT
#undef JUMP
    return n;
#else
    (void)prog;
    return 0;
#endif
}

static void install_seccomp(void)
{
    struct sock_filter_v prog[128];
    unsigned short n = build_seccomp(prog);
    if (n == 0) { errno = ENOSYS; fail("seccomp", "no filter for this architecture"); }
    struct sock_fprog_v fprog = { n, prog };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER_V, &fprog, 0, 0) != 0) fail("prctl", "PR_SET_SECCOMP");
}

static int print_seccomp(void)
{
    struct sock_filter_v prog[128];
    unsigned short n = build_seccomp(prog);
    if (n == 0) { dprintf(2, "requiem-launch: no seccomp filter for this architecture\n"); return SETUP_FAILED; }
    size_t len = n * sizeof prog[0];
    return write(1, prog, len) == (ssize_t)len ? 0 : SETUP_FAILED;
}

static void exec_command(char **argv, struct limit *limits, int nlimits)
{
    for (int i = 0; i < nlimits; i++) {
        if (!limits[i].set) continue;
        struct rlimit rl = { limits[i].value, limits[i].value };
        if (setrlimit(limits[i].resource, &rl) != 0) fail("setrlimit", limits[i].name);
    }
    drop_all_capabilities();
    if (use_seccomp) install_seccomp();
    reset_signals();
    execve(argv[0], argv, environ);
    int code = errno == ENOENT || errno == ENOTDIR ? 127 : 126;
    dprintf(2, "requiem-launch: cannot execute %s: %s\n", argv[0], strerror(errno));
    _exit(code);
}

static void join(char *out, const char *a, const char *b)
{
    if (snprintf(out, PATH_MAX, "%s%s", a, b) >= PATH_MAX) { errno = ENAMETOOLONG; fail("path", b); }
}

/* mkdir -p below an existing prefix (the new root): every component is created if missing. */
static void make_dirs(const char *prefix, const char *path)
{
    char buf[PATH_MAX];
    join(buf, prefix, path);
    for (char *p = buf + strlen(prefix) + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("mkdir", buf);
            *p = saved;
            if (!saved) break;
        }
    }
}

static void make_parent_dirs(const char *newroot, const char *path)
{
    char parent[PATH_MAX];
    join(parent, "", path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) { *slash = 0; make_dirs(newroot, parent); }
}

/* A mount point for PATH in the new root: a directory, or an empty file when the source is not a directory. */
static void make_mount_point(const char *newroot, const char *path, int is_dir)
{
    char dst[PATH_MAX];
    join(dst, newroot, path);
    struct stat st;
    if (lstat(dst, &st) == 0) return;
    if (is_dir) { make_dirs(newroot, path); return; }
    make_parent_dirs(newroot, path);
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail("create", dst);
    close(fd);
}

/* Read-only: mount_setattr keeps the flags a user namespace locked (nosuid, nodev, ...); MS_REMOUNT where it is missing.
 * A recursive request fails closed without mount_setattr (Linux < 5.12): a remount changes only the top mount, and the
 * mounts below it (/var, /opt, ...) would stay writable — the probe then sees setup fail and reports the mode unsupported. */
static void make_read_only(const char *path, int recursive)
{
    struct mount_attr_v0 attr = { MOUNT_ATTR_RDONLY, 0, 0, 0 };
    if (syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path, recursive ? AT_RECURSIVE_FLAG : 0, &attr, sizeof attr) == 0) return;
    if (errno != ENOSYS || recursive) fail("mount_setattr read-only (recursive read-only mounts need Linux 5.12)", path);
    struct statvfs sv;
    if (statvfs(path, &sv) != 0) fail("statvfs", path);
    unsigned long keep = sv.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
    if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) != 0) fail("remount read-only", path);
}

static void mount_tmpfs(const char *dst, const char *options)
{
    if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) fail("mount tmpfs", dst);
}

static void bind(const char *src, const char *dst, int read_only, const char *what)
{
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) fail("bind", what);
    if (read_only) make_read_only(dst, 1);
}

/* A source opened by open_sources, as a path mount(2) follows to it: the host's /proc is still in place then. */
static const char *fd_path(char *buf, int fd)
{
    snprintf(buf, 32, "/proc/self/fd/%d", fd);
    return buf;
}

static int open_source(const char *path)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) fail("open", path);
    return fd;
}

static void mount_devpts(const char *pts);

/* A minimal /dev: the harmless character devices bound from the host, a private /dev/shm, the usual links. */
static void mount_dev(struct mount_op *op, const char *newroot)
{
    char dev[PATH_MAX], node[PATH_MAX], host[PATH_MAX], src[32];
    join(dev, newroot, op->path);
    mount_tmpfs(dev, "mode=755");
    for (int i = 0; i < DEV_NODES; i++) {
        join(node, dev, dev_nodes[i]);
        int fd = open(node, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) fail("create", node);
        close(fd);
        join(host, op->path, dev_nodes[i]);
        const char *from = op->dev_fd[i] >= 0 ? fd_path(src, op->dev_fd[i]) : host;
        if (mount(from, node, NULL, MS_BIND, NULL) != 0) fail("bind", host);
        if (op->dev_fd[i] >= 0) close(op->dev_fd[i]);
    }
    join(node, dev, "/shm");
    if (mkdir(node, 01777) != 0) fail("mkdir", node);
    if (!holding_view) mount_tmpfs(node, "mode=1777");
    static const char *const links[][2] = {
        { "/proc/self/fd", "/fd" }, { "/proc/self/fd/0", "/stdin" }, { "/proc/self/fd/1", "/stdout" },
        { "/proc/self/fd/2", "/stderr" }, { "pts/ptmx", "/ptmx" },
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        join(node, dev, links[i][1]);
        if (symlink(links[i][0], node) != 0) fail("symlink", node);
    }
    join(node, dev, "/pts");
    if (mkdir(node, 0755) != 0) fail("mkdir", node);
    if (holding_view) {
        /* Shared by every run that copies the view: read-only (the node binds below stay usable; /dev/shm and
         * /dev/pts are mounted per run over the mount points made above). */
        make_read_only(dev, 0);
        return;
    }
    mount_devpts(node);
}

/* A devpts instance of the run's own, so /dev/ptmx (and openpty: script, expect, pty-based test runners) works
 * without exposing the host's terminals; where the kernel refuses it, the run simply has no ptys. */
static void mount_devpts(const char *pts)
{
    (void)mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
}

/* /proc of the command's own PID namespace (mounted by init, which is in it), with the kernel's tunables read-only;
 * an empty read-only tmpfs over /sys/fs/cgroup, so the run can neither raise its pids.max nor leave its cgroup. */
static void mount_proc(const char *newroot)
{
    char path[PATH_MAX];
    join(path, newroot, "/proc");
    if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("mount proc", path);
    /* The kernel's writable knobs a uid-0 command without capabilities could still reach by file permissions alone
     * (runc's read-only list, plus /proc/acpi). */
    static const char *const tunables[] = { "/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/acpi" };
    for (size_t i = 0; i < sizeof tunables / sizeof tunables[0]; i++) {
        join(path, newroot, tunables[i]);
        if (access(path, F_OK) != 0) continue;
        bind(path, path, 1, tunables[i]);
    }
}

static void make_proc_mount_point(const char *newroot)
{
    char path[PATH_MAX];
    join(path, newroot, "/proc");
    if (mkdir(path, 0555) != 0 && errno != EEXIST) fail("mkdir", path);
}

static void mask_cgroup(const char *newroot)
{
    char path[PATH_MAX];
    join(path, newroot, "/sys/fs/cgroup");
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        mount_tmpfs(path, "mode=555,size=0");
        make_read_only(path, 0);
    }
}

static void mount_proc_and_cgroup(const char *newroot)
{
    make_proc_mount_point(newroot);
    mount_proc(newroot);
    mask_cgroup(newroot);
}

static int is_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

static int run_input(const struct mount_op *op);

/* Every host path the view takes something from, opened (O_PATH) while the host's tree is still as it was: nothing
 * mounted while the view is assembled can change what a source resolves to, so the new root can be built over a
 * directory of the host's tree (new_root_dir) and entered with a single pivot_root. */
static void open_sources(const char *newroot)
{
    char path[PATH_MAX];
    for (int i = 0; i < nops; i++) {
        struct mount_op *op = &ops[i];
        if (op->kind == OP_DEV) {
            /* The host's /dev (a real directory, not below the new root's mount point) is bound by path: a lookup
             * through /proc/self/fd costs more than the device nodes' own bind. */
            struct stat st;
            int by_path = lstat(op->path, &st) == 0 && S_ISDIR(st.st_mode) && !is_under(op->path, newroot);
            for (int n = 0; n < DEV_NODES; n++) {
                join(path, op->path, dev_nodes[n]);
                op->dev_fd[n] = by_path ? -1 : open_source(path);
            }
            continue;
        }
        if (op->kind != OP_BIND && op->kind != OP_RO_BIND) continue;
        op->fd = open_source(op->path);
        struct stat st, lst;
        if (fstat(op->fd, &st) != 0 || lstat(op->path, &lst) != 0) fail("stat", op->path);
        op->is_dir = S_ISDIR(st.st_mode);
        op->dev = st.st_dev;
        op->ino = st.st_ino;
        if (holding_view && (op->kind == OP_BIND || run_input(op))) { close(op->fd); op->fd = -1; continue; } /* a run's own */
        if (S_ISLNK(lst.st_mode) && op->is_dir) {
            ssize_t n = readlink(op->path, path, sizeof path - 1);
            if (n < 0) fail("readlink", op->path);
            path[n] = 0;
            if (!(op->link = strdup(path))) fail("strdup", op->path);
        }
    }
}

/* Where the new root is assembled: an existing directory that it is mounted over in our private mount namespace (every
 * source below it is opened before, so what it hides does not matter). Not /proc: the sources are reached through it. */
static const char *new_root_dir(void)
{
    static const char *const candidates[] = { "/tmp", "/mnt", "/run", "/var", "/opt", "/srv", "/media", "/home", "/usr", "/etc" };
    struct stat st;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (lstat(candidates[i], &st) == 0 && S_ISDIR(st.st_mode)) return candidates[i];
    }
    errno = ENOENT;
    fail("no directory to assemble the new root on", NULL);
    return NULL;
}

static int under_per_run_tmpfs(const char *path);

/* Builds the command's filesystem view (see the top of the file). Runs in init, in the new PID and mount namespaces
 * (or, with --hold-view, the per-layout part of it in the holder's mount namespace). */
static void build_filesystem(void)
{
    if (!root_kind) {
        mount_proc_and_cgroup("");
        return;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) fail("getcwd", NULL);
    const char *newroot = new_root_dir();
    open_sources(newroot);
    if (strcmp(root_kind, "ro-host") == 0) bind("/", newroot, 1, "/");
    else mount_tmpfs(newroot, "mode=755");
    char src[32], dst[PATH_MAX];
    for (int i = 0; i < nops; i++) {
        struct mount_op *op = &ops[i];
        const char *p = op->path;
        join(dst, newroot, p);
        struct stat st;
        switch (op->kind) {
        case OP_TMPFS:
        case OP_HIDE:
            make_mount_point(newroot, p, 1);
            if (op->kind == OP_TMPFS && holding_view) break; /* mounted per run */
            mount_tmpfs(dst, op->kind == OP_TMPFS ? "mode=1777" : "mode=755");
            break;
        case OP_DEV:
            make_mount_point(newroot, p, 1);
            mount_dev(op, newroot);
            break;
        case OP_BIND:
        case OP_RO_BIND:
            if (holding_view && (op->kind == OP_BIND || run_input(op))) {
                /* The run moves its own tree here; below one of its per-run tmpfs the run makes the mount point (and
                 * an input's is in the run's workspace). */
                if (op->kind == OP_BIND && !under_per_run_tmpfs(p)) make_mount_point(newroot, p, op->is_dir);
                break;
            }
            if (op->link && lstat(dst, &st) != 0) {
                make_parent_dirs(newroot, p);
                if (symlink(op->link, dst) != 0) fail("symlink", dst);
                op->linked = 1;
            } else {
                make_mount_point(newroot, p, op->is_dir);
                bind(fd_path(src, op->fd), dst, op->kind == OP_RO_BIND, p);
            }
            close(op->fd);
            break;
        }
    }
    for (int i = 0; i < nops; i++) {
        if (ops[i].kind != OP_HIDE) continue;
        join(dst, newroot, ops[i].path);
        make_read_only(dst, 0);
    }
    if (holding_view) {
        make_proc_mount_point(newroot);
        mask_cgroup(newroot);
    } else {
        mount_proc_and_cgroup(newroot);
    }
    if (strcmp(root_kind, "tmpfs") == 0) make_read_only(newroot, 0);
    /* Into the new root; the old one is detached and can never be reached again. */
    if (chdir(newroot) != 0) fail("chdir", newroot);
    if (syscall(SYS_pivot_root, ".", ".") != 0) fail("pivot_root", newroot);
    if (umount2(".", MNT_DETACH) != 0) fail("umount", "old root");
    if (chdir("/") != 0) fail("chdir", "/");
    if (!holding_view && chdir(cwd) != 0) fail("chdir (the working directory is not in the sandbox's filesystem)", cwd);
}

/* A read-only bind at or below a --bind path (a declared input inside the workspace): with a held view it is the run's
 * own, captured and made read-only per run over the run's workspace, as the per-run build binds it. */
static int run_input(const struct mount_op *op)
{
    if (op->kind != OP_RO_BIND) return 0;
    for (int i = 0; i < nops; i++) {
        if (ops[i].kind == OP_BIND && is_under(op->path, ops[i].path)) return 1;
    }
    return 0;
}

static int under_per_run_tmpfs(const char *path)
{
    for (int i = 0; i < nops; i++) {
        if (ops[i].kind == OP_TMPFS && is_under(path, ops[i].path)) return 1;
    }
    return 0;
}

/* Per run, over a private copy of a held view (init, in the run's new mount and PID namespaces; the root and cwd are
 * the view's root): the private /tmp and /var/tmp, /dev/shm and /dev/pts, the run's own trees captured with open_tree
 * in the host's namespace (the workspace), the run's /proc. Nothing is created in the held view's shared tmpfs: its
 * mount points were made by the holder, and it is read-only (a mount point missing there fails with EROFS). */
static void build_joined_view(const char *cwd)
{
    char path[PATH_MAX];
    for (int i = 0; i < nops; i++) {
        struct mount_op *op = &ops[i];
        switch (op->kind) {
        case OP_TMPFS:
            make_mount_point("", op->path, 1);
            mount_tmpfs(op->path, "mode=1777");
            break;
        case OP_DEV:
            join(path, op->path, "/shm");
            mount_tmpfs(path, "mode=1777");
            join(path, op->path, "/pts");
            mount_devpts(path);
            break;
        case OP_BIND:
        case OP_RO_BIND:
            if (op->kind == OP_RO_BIND && !run_input(op)) break; /* held */
            make_mount_point("", op->path, op->is_dir);
            /* Following a symlink at the destination, as mount(2) does in the per-run build. */
            if (syscall(SYS_MOVE_MOUNT, op->fd, "", AT_FDCWD, op->path, MOVE_MOUNT_F_EMPTY_PATH_FLAG | MOVE_MOUNT_T_SYMLINKS_FLAG) != 0)
                fail("move_mount", op->path);
            close(op->fd);
            /* The clone is a peer of the host's mount: private, as a bind in a private namespace is. */
            if (mount(NULL, op->path, NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("mount private", op->path);
            if (op->kind == OP_RO_BIND) make_read_only(op->path, 1);
            break;
        default:
            break; /* held */
        }
    }
    mount_proc("");
    if (chdir(cwd) != 0) fail("chdir (the working directory is not in the sandbox's filesystem)", cwd);
}

/* The run's own trees, captured in the host's mount namespace before it joins the held view: a bind through an fd of
 * another namespace is refused (check_mnt), a detached clone from open_tree can be moved into any namespace. */
static void capture_run_trees(void)
{
    for (int i = 0; i < nops; i++) {
        struct mount_op *op = &ops[i];
        if (op->kind != OP_BIND && !run_input(op)) continue;
        op->fd = (int)syscall(SYS_OPEN_TREE, AT_FDCWD, op->path, OPEN_TREE_CLONE_FLAG | O_CLOEXEC | AT_RECURSIVE_FLAG);
        if (op->fd < 0) fail("open_tree (a held view needs Linux 5.2)", op->path);
        struct stat st;
        if (fstat(op->fd, &st) != 0) fail("stat", op->path);
        op->is_dir = S_ISDIR(st.st_mode);
    }
}

/* A path the holder takes from the host (a read-only bind, a hidden path, /dev) must not lie below a mount a run makes
 * over it (a --tmpfs or a --bind): the run's mount would cover it, where the per-run build made it over the run's. */
static void check_held_layout(void)
{
    for (int i = 0; i < nops; i++) {
        if (ops[i].kind == OP_TMPFS || ops[i].kind == OP_BIND || run_input(&ops[i])) continue;
        for (int j = 0; j < nops; j++) {
            if ((ops[j].kind == OP_TMPFS || ops[j].kind == OP_BIND) && is_under(ops[i].path, ops[j].path)) {
                errno = EINVAL;
                fail("a held view cannot hold a path below a per-run mount:", ops[i].path);
            }
        }
    }
}

/* A holder's last step: "ready" on stdout, then it keeps what it made (a namespace) until its stdin reaches EOF. */
static int report_ready_and_hold(void)
{
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) return 0;
    }
}

/*
 * --hold-view: the per-layout part of the view, built once in a mount namespace of its own and entered (pivot_root,
 * old root detached); then one line per held --ro-bind (not the run's inputs), in order, saying what the view holds there ("bind MAJOR MINOR INO"
 * of the source it bound, or "link TARGET" where a symlink was recreated), "ready", and it stays until stdin reaches
 * EOF (the engine opens /proc/PID/ns/mnt first: the namespace lives as long as that descriptor). Root only.
 */
static int hold_view(void)
{
    if (!root_kind) { dprintf(2, "requiem-launch: --hold-view needs --root\n"); return SETUP_FAILED; }
    check_held_layout();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl", "PR_SET_PDEATHSIG");
    if (unshare(CLONE_NEWNS) != 0) fail("unshare", "CLONE_NEWNS");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("mount", "/ private");
    build_filesystem();
    for (int i = 0; i < nops; i++) {
        struct mount_op *op = &ops[i];
        if (op->kind != OP_RO_BIND || run_input(op)) continue;
        if (op->linked) printf("link %s\n", op->link);
        else printf("bind %u %u %llu\n", major(op->dev), minor(op->dev), (unsigned long long)op->ino);
    }
    return report_ready_and_hold();
}

/*
 * init and the command are started the way posix_spawn starts a program: CLONE_VM | CLONE_VFORK on a stack of their
 * own, so the address space is not copied (a fork cost 0.05-0.07 ms more here), and the parent, which has nothing to do but
 * wait, sleeps until the child has exec'd or exited. The child has its own descriptor table, signal handlers, rlimits,
 * credentials and seccomp filter (none of CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD); what it writes to memory (errno,
 * the mount list) the sleeping parent never reads again.
 */
#define CHILD_STACK (256 * 1024)
static char init_stack[CHILD_STACK] __attribute__((aligned(16)));
static char command_stack[CHILD_STACK] __attribute__((aligned(16)));

struct run { char **argv; struct limit *limits; int nlimits; int alive[2]; const char *cwd; };

static int command_main(void *arg)
{
    struct run *run = arg;
    exec_command(run->argv, run->limits, run->nlimits);
    return SETUP_FAILED;
}

/* PID 1 of the run's namespace: start the command as PID 2, reap everything, exit with the command's status. */
static int init_main(void *arg)
{
    struct run *run = arg;
    close(run->alive[1]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl", "PR_SET_PDEATHSIG");
    struct pollfd p = { run->alive[0], POLLIN, 0 };
    if (poll(&p, 1, 0) > 0) _exit(SETUP_FAILED); /* the launcher died before the death signal was armed */
    close(run->alive[0]);
    if (joining_view) build_joined_view(run->cwd);
    else build_filesystem();

    pid_t cmd = clone(command_main, command_stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, run);
    if (cmd < 0) fail("clone", "command");
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
    return report_ready_and_hold();
}

/* Joins the namespace at PATH only if it is the one the engine named by inode: a holder that died, or a descriptor closed
 * and its number reused, can never lead a run into another namespace. */
static void join_namespace(const char *path, rlim_t inode, int nstype, const char *mismatch)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) fail("stat", path);
    if ((rlim_t)st.st_ino != inode) {
        errno = ESTALE;
        fail(mismatch, path);
    }
    if (setns(fd, nstype) != 0) fail("setns", path);
    close(fd);
}

static void read_last_cap(void)
{
    char buf[16] = { 0 };
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return; /* 63 then: PR_CAPBSET_DROP of a cap the kernel does not know is EINVAL, ignored */
    if (read(fd, buf, sizeof buf - 1) > 0) last_cap = atoi(buf);
    close(fd);
    if (last_cap < 0 || last_cap > 63) last_cap = 63;
}

int main(int argc, char **argv)
{
    int pidns = 0, netns = 0, userns = 0;
    const char *join_netns = NULL, *cgroup_procs = NULL, *join_view = NULL;
    rlim_t netns_inode = 0, view_inode = 0;
    struct limit limits[] = {
        { RLIMIT_AS, "--as", 0, 0 },
        { RLIMIT_CPU, "--cpu", 0, 0 },
        { RLIMIT_NOFILE, "--nofile", 0, 0 },
        { RLIMIT_NPROC, "--nproc", 0, 0 },
    };
    static const struct { const char *name; enum op_kind kind; } op_names[] = {
        { "--bind", OP_BIND }, { "--ro-bind", OP_RO_BIND }, { "--tmpfs", OP_TMPFS }, { "--hide", OP_HIDE }, { "--dev", OP_DEV },
    };
    const int nlimits = (int)(sizeof limits / sizeof limits[0]);
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++; break; }
        if (strcmp(a, "--pidns") == 0) { pidns = 1; continue; }
        if (strcmp(a, "--netns") == 0) { netns = 1; continue; }
        if (strcmp(a, "--userns") == 0) { userns = 1; continue; }
        if (strcmp(a, "--seccomp") == 0) { use_seccomp = 1; continue; }
        if (strcmp(a, "--version") == 0) { printf("requiem-launch 4\n"); return 0; }
        if (strcmp(a, "--hold-netns") == 0) return hold_netns();
        if (strcmp(a, "--hold-view") == 0) { holding_view = 1; continue; }
        if (strcmp(a, "--print-seccomp") == 0) return print_seccomp();
        if (i + 1 >= argc) { dprintf(2, "requiem-launch: %s needs a value\n", a); return SETUP_FAILED; }
        if (strcmp(a, "--join-netns") == 0) { join_netns = argv[++i]; continue; }
        if (strcmp(a, "--join-view") == 0) { join_view = argv[++i]; joining_view = 1; continue; }
        if (strcmp(a, "--cgroup-procs") == 0) { cgroup_procs = argv[++i]; continue; }
        if (strcmp(a, "--root") == 0) {
            root_kind = argv[++i];
            if (strcmp(root_kind, "ro-host") != 0 && strcmp(root_kind, "tmpfs") != 0) {
                dprintf(2, "requiem-launch: --root: ro-host or tmpfs, not %s\n", root_kind);
                return SETUP_FAILED;
            }
            continue;
        }
        if (strcmp(a, "--netns-inode") == 0 || strcmp(a, "--view-inode") == 0) {
            rlim_t *inode = a[2] == 'n' ? &netns_inode : &view_inode;
            if (parse_u64(argv[++i], inode) != 0 || *inode == 0) {
                dprintf(2, "requiem-launch: %s: not a positive integer: %s\n", a, argv[i]);
                return SETUP_FAILED;
            }
            continue;
        }
        int matched = 0;
        for (size_t o = 0; o < sizeof op_names / sizeof op_names[0]; o++) {
            if (strcmp(a, op_names[o].name) != 0) continue;
            const char *path = argv[++i];
            if (path[0] != '/' || strstr(path, "/../") || strstr(path, "/./") || strcmp(path, "/") == 0) {
                dprintf(2, "requiem-launch: %s: not a normalised absolute path below /: %s\n", a, path);
                return SETUP_FAILED;
            }
            if (nops == MAX_MOUNT_OPS) { dprintf(2, "requiem-launch: more than %d mounts\n", MAX_MOUNT_OPS); return SETUP_FAILED; }
            ops[nops].kind = op_names[o].kind;
            ops[nops++].path = path;
            matched = 1;
        }
        for (int l = 0; l < nlimits && !matched; l++) {
            if (strcmp(a, limits[l].name) != 0) continue;
            if (parse_u64(argv[++i], &limits[l].value) != 0) {
                dprintf(2, "requiem-launch: %s: not a non-negative integer: %s\n", a, argv[i]);
                return SETUP_FAILED;
            }
            limits[l].set = matched = 1;
        }
        if (!matched) { dprintf(2, "requiem-launch: unknown option %s\n", a); return SETUP_FAILED; }
    }
    if (holding_view) return hold_view();
    if (i >= argc) { dprintf(2, "requiem-launch: no command after --\n"); return SETUP_FAILED; }
    if (joining_view && (!root_kind || view_inode == 0)) { dprintf(2, "requiem-launch: --join-view needs --view-inode and the view's --root\n"); return SETUP_FAILED; }
    if (!pidns && (nops > 0 || root_kind)) { dprintf(2, "requiem-launch: mounts need --pidns\n"); return SETUP_FAILED; }
    if (nops > 0 && !root_kind) { dprintf(2, "requiem-launch: mounts need --root\n"); return SETUP_FAILED; }
    char **command = argv + i;
    read_last_cap();

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
        join_namespace(join_netns, netns_inode, CLONE_NEWNET, "the network namespace to join is not the expected one:");
    }
    if (!pidns) {
        if (netns && unshare(CLONE_NEWNET) != 0) fail("unshare", "CLONE_NEWNET");
        exec_command(command, limits, nlimits);
    }
    char cwd[PATH_MAX];
    if (joining_view) {
        /* Everything the run takes from the host's namespace first: the working directory's path, its own trees. */
        if (!getcwd(cwd, sizeof cwd)) fail("getcwd", NULL);
        capture_run_trees();
        join_namespace(join_view, view_inode, CLONE_NEWNS, "the held view to join is not the expected one:");
    }
    /* The cgroup namespace comes after joining the run's cgroup, so that cgroup is the command's root. */
    int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWCGROUP | (netns && !join_netns ? CLONE_NEWNET : 0);
    if (unshare(flags) != 0) fail("unshare", "CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWCGROUP");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("mount", "/ private");

    int alive[2];
    if (pipe2(alive, O_CLOEXEC) != 0) fail("pipe", NULL);
    struct run run = { command, limits, nlimits, { alive[0], alive[1] }, cwd };
    pid_t init = clone(init_main, init_stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &run);
    if (init < 0) fail("clone", "init");
    close(alive[0]);
    for (;;) {
        int st;
        if (waitpid(init, &st, 0) == init) return status_of(st);
        if (errno != EINTR) fail("waitpid", "init");
    }
}
