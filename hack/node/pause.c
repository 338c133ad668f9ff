/*
 * The pod sandbox's pause process for the real nodes (hack/build-node.sh packs it as the
 * image localhost/pause:latest): public pause images cannot be pulled here.
 * It holds the pod's namespaces, sleeps until told to stop, and, as PID 1 of a shared PID
 * namespace, reaps orphans so they do not pile up as zombies.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  int saved = errno; /* waitpid may clobber it under the interrupted code */
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(void) {
  struct sigaction sa;

  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) return 1;

  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sa.sa_handler = on_child;
  if (sigaction(SIGCHLD, &sa, NULL) < 0) return 2;

  for (;;) pause();
}
