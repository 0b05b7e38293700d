// Command baton upgrades servers in place with zero downtime, speaking
// systemd's own protocols (LISTEN_FDS socket passing, sd_notify), and
// writes the units that run them under systemd.
//
// Install:
//
//	go install github.com/batonhq/baton/cmd/baton@latest
//	sudo install "$(go env GOPATH)/bin/baton" /usr/local/bin/baton   # where the units look for it
//
// Commands:
//
//	baton run      hold sockets and run a program with them; upgrade it in place
//	baton reload   ask a running baton process to upgrade, and wait for the outcome
//	baton status   show a running baton process's generations and upgrades
//	baton stop     stop a process gracefully and wait until it has exited (ExecStop=)
//	baton units    write the .socket and .service units for a service (--run: under baton run)
//	baton fds      print the file descriptors this process was handed
//	baton demo     a live server upgraded under load, in one command
//	baton version  print baton's version and the revision it was built from (also --version)
//	baton help     list the commands, or show one command's usage
//
// 'baton help COMMAND' or 'baton COMMAND -h' prints a command's usage.
// Exit status: 0 success (and -h), 1 failure, 2 usage error (a bad flag,
// argument or spec value); baton reload: 3 upgrade in progress, 4
// permission denied, 5 no baton process or no outcome, 130 interrupted;
// baton status: 4, 5 as reload; baton run: its CMD's status. baton reload
// exits 0 also when the upgrade was abandoned because the service is
// stopping: systemd counts any other status of ExecReload= as a failure
// of the unit, and a stop during a reload is not one.
//
// For the code: each subcommand is a type with Run(ctx, args) error and
// its own flag.FlagSet, in a file of its own, listed once in the registry
// in commands.go. main only maps the error to an exit status; a command
// picks a status of its own by returning an error with an ExitCode() int
// method.
//
// baton run supervises one CMD by default and a pool with --workers N
// (upgraded rolling, at most N+--max-surge CMDs at once; workers that exit
// are started again with a doubling delay; SIGTTIN and SIGTTOU resize it).
// With --watch-window D one CMD's upgrade keeps the old CMD on standby for
// D, rolled back to if the new one exits; baton reload returns at the
// cut-over unless given --wait-window, and exits 1 for a rollback. Its
// run.go holds the lifecycle (signals, control socket), run_flags.go the
// flags and their checks, run_sockets.go the sockets, status.go what
// baton status prints of it.
//
// baton builds everywhere, but run, reload, stop, demo and fds work on
// Linux only (commandInfo.LinuxOnly): elsewhere they print their usage for
// -h and otherwise exit 1 at once ("baton run: not supported on darwin:
// Linux only (...)"). units works everywhere; it warns on stderr when the
// --baton path is not executable here.
//
// Traps:
//   - SIGINT and SIGTERM cancel the context given to Run; a command that
//     must outlive them handles the signals itself (baton run forwards
//     them; baton reload keeps waiting for the answer on SIGTERM, which
//     systemd sends to ExecReload= on stop, and gives up on SIGINT).
//   - Until main has a signal handler (the first milliseconds of the
//     process), SIGTERM kills it: a stop at the very start of ExecReload=
//     still ends `baton reload` by signal, and systemd then marks the unit
//     failed. A Go program cannot handle a signal before its runtime runs.
//   - -h prints to stdout and exits 0; a usage error prints to stderr and
//     exits 2.
package main
