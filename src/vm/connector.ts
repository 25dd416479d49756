/**
 * What QEMU runs for each guest connection to one of castra's services (the VM's metadata server at
 * 169.254.169.254:80, the project's broker): perl relaying the connection (its stdin and stdout, one socket) to
 * the service's unix socket, then exiting. perl because it is on every
 * host castra supports (Debian's perl-base is Essential, macOS ships it) and starts in a few milliseconds with
 * about 2 MB of its own memory; a Node connector would cost ~40 MB per connection. Why this design, and not
 * another: docs/architecture.md, "The metadata service".
 *
 * The script is terse because QEMU keeps a guestfwd rule in 1024 bytes, script and socket path included. It
 * loads no module (each costs 5–15 ms per connection) and uses no signal (QEMU blocks SIGALRM, and children
 * inherit the mask): both directions are non-blocking behind one `select` loop that wakes at least every
 * 0.25 s to check its deadline against `time`, a clock of whole seconds. Before the answer the server's read
 * deadline decides (the connector waits longer, so a 408 gets through); once the answer began, the connector
 * ends the connection before the write deadline, so nothing started for it outlives that.
 */
const CONNECTOR_LINES = [
  // The server's socket, then the seconds the server may take to answer and to deliver the answer.
  "($p,$r,$w)=@ARGV;",
  "$SIG{PIPE}=IGNORE;",
  // stderr is the guest's connection too: nothing may ever be printed there.
  "close STDERR;",
  // Linux's sockaddr_un is a 16-bit family (little-endian hosts); BSDs' a length byte, then the family.
  // O_NONBLOCK is 2048 on Linux, 4 on BSDs; F_SETFL 4, AF_UNIX and SOCK_STREAM 1 everywhere.
  "$x=$^O eq linux;",
  "socket S,1,1,0;",
  // The server may still be starting: retry for a second; without it the guest's connection just closes.
  '$a=pack($x?"Cxa*":"xCa*",1,$p);',
  "until($c=connect S,$a or++$t>20){select$u,$u,$u,.05}",
  "$c or exit;",
  "$f=fileno S;",
  "fcntl($_,4,$x?2048:4)for S,STDOUT;",
  // $i waits for the server, $o for the guest; $I: the guest's side ended; $E: the server's; $g: the answer
  // began. A socket that select reports ready reads or writes without blocking.
  "$d=time+$r+2;",
  "while(!$E||length$o){",
  "time<$d or exit;",
  '$R=$W="";',
  "vec($R,0,1)=!$I&&!length$i;",
  "vec($R,$f,1)=!$E&&!length$o;",
  "vec($W,1,1)=length$o>0;",
  "vec($W,$f,1)=length$i>0;",
  "select($R,$W,$u,.25)>0 or next;",
  "if(vec$R,0,1){sysread STDIN,$i,65536 or$I=1,shutdown S,1}",
  'if(vec$W,$f,1){$k=syswrite S,$i;$k?substr($i,0,$k,""):($I=1)}',
  // The answer has begun: end it within the write deadline (0.75 to 2 s early, with a whole-second clock).
  "if(vec$R,$f,1){sysread S,$o,65536 or$E=1,next;$g++or$d=time+$w-1}",
  'if(vec$W,1,1){$k=syswrite STDOUT,$o or exit;substr($o,0,$k,"")}',
  "}",
  // Refused (nothing was answered): close at once.
  "$g or exit;",
  "close S;",
  // End the answer, then read what the guest still sends for a moment: closing a socket with unread bytes
  // resets it, and the reset can discard an answer the guest has not read yet.
  "shutdown STDOUT,1;",
  'for(1..5){$I and last;$R="";vec($R,0,1)=1;select($R,$u,$u,.1)>0 and(sysread STDIN,$k,65536 or last)}',
];

/** The connector as one `perl -e` script, on one line. */
export const CONNECTOR_SCRIPT = CONNECTOR_LINES.join("");

export interface ConnectorOptions {
  /** Absolute path of perl, found on PATH when `up` runs its preflight. */
  perlPath: string;
  /** The service's unix socket (absolute). */
  socketPath: string;
  /** The server's read and write deadlines (whole seconds reach the connector). */
  readTimeoutMs: number;
  writeTimeoutMs: number;
}

/** The connector's argv, perl first; `--` ends perl's own options, whatever the socket path looks like. */
export function connectorArgv(options: ConnectorOptions): string[] {
  // At least 3 s: the connector ends an answer up to 2 s before the write deadline.
  const seconds = (ms: number) => String(Math.max(3, Math.ceil(ms / 1000)));
  return [
    options.perlPath,
    "-e",
    CONNECTOR_SCRIPT,
    "--",
    options.socketPath,
    seconds(options.readTimeoutMs),
    seconds(options.writeTimeoutMs),
  ];
}
