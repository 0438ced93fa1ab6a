#!/usr/bin/env python3
"""cli_docs.py CKPT MANPAGE COMPLETION: checks that the man page and the bash completion name
exactly the commands and options that `ckpt --help` and each `ckpt COMMAND --help` print, so
that an option added to the program and not to its documents (or the other way) fails here.
Prints one TAP line a check ("ok N - ..." / "not ok N - ..."), details after a failure.

--help is the reference: an option is a token at the start of an indented help line, or after
a comma in that line's leading list ("  -v, --verbose  ...", "  --json, --junit FILE, -v ...").
In the man page, an option is a token on the tag line after .TP; a command's set is its .SS
section's tags, plus the tags of every other "... OPTIONS" section its text names in bold.
"""
import re
import subprocess
import sys

OPTION = re.compile(r"(?:^|,\s*)(--?[A-Za-z0-9][A-Za-z0-9-]*)")
checks = 0
failed = 0


def report(name, ok, detail=""):
    global checks, failed
    checks += 1
    print(("ok" if ok else "not ok") + f" {checks} - {name}")
    if not ok:
        failed += 1
        for line in detail.splitlines():
            print("#   " + line)


def compare(name, want, have, want_label, have_label):
    missing, extra = sorted(want - have), sorted(have - want)
    detail = ""
    if missing:
        detail += f"in {want_label}, not in {have_label}: {' '.join(missing)}\n"
    if extra:
        detail += f"in {have_label}, not in {want_label}: {' '.join(extra)}\n"
    report(name, not missing and not extra, detail)


def help_text(ckpt, *args):
    done = subprocess.run([ckpt, *args, "--help"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def help_options(text):
    """The options an indented help line starts with (at most 4 spaces: deeper lines continue a description)."""
    found = set()
    for line in text.splitlines():
        m = re.match(r"^ {1,4}(-.*)$", line)
        if not m:
            continue
        lead = re.split(r"\s{2,}", m.group(1))[0]
        found.update(OPTION.findall(lead))
    return found


def help_commands(text):
    """The commands `ckpt --help` lists under "Commands:"."""
    names, inside = [], False
    for line in text.splitlines():
        if line.strip().endswith(":"):
            inside = line.strip() == "Commands:"
            continue
        m = re.match(r"^  ([a-z][a-z0-9-]*)\s", line)
        if inside and m:
            names.append(m.group(1))
    return names


def usage_subcommands(command, text):
    """The subcommands the Usage lines of `ckpt COMMAND --help` name: "ckpt manifest merge DST"."""
    pattern = r"^(?:Usage:)?\s*ckpt " + re.escape(command) + r" ([a-z][a-z0-9-]*)\b"
    return sorted({m.group(1) for m in re.finditer(pattern, text, re.M)})


def roff_plain(line):
    line = line.replace("\\-", "-").replace("\\(em", " ")
    line = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\e", "", line)
    return line.replace('"', " ")


def man_sections(path):
    """{(level, title): (tags, body)} for each .SH and .SS; tags: the options of its .TP tag lines."""
    sections, key, tag_next = {}, None, False
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith('.\\"'):
                continue
            m = re.match(r"^\.(SH|SS)\s+(.*)$", line)
            if m:
                key = (m.group(1), roff_plain(m.group(2)).strip())
                sections[key] = (set(), [])
                tag_next = False
                continue
            if key is None:
                continue
            tags, body = sections[key]
            if line.startswith(".TP"):
                tag_next = True
                continue
            if tag_next:
                words = roff_plain(re.sub(r"^\.[A-Z]+\s*", "", line))
                tags.update(t for t in re.findall(r"(?:^|[\s,])(--?[A-Za-z0-9][A-Za-z0-9-]*)", words))
                tag_next = False
            body.append(roff_plain(line))
    return sections


def main():
    ckpt, manpage, completion = sys.argv[1:4]
    sections = man_sections(manpage)
    shared = {title: tags for (level, title), (tags, _) in sections.items()
              if level == "SH" and title.endswith("OPTIONS") and title != "OPTIONS"}
    man_commands = {}
    for (level, title), (tags, body) in sections.items():
        # "ckpt convert SRC DST ..." is convert, "ckpt manifest sums DIR ..." is "manifest sums"
        m = re.match(r"^ckpt ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)\b", title)
        if level != "SS" or not m:
            continue
        text = "\n".join(body)
        opts = set(tags)
        for name, shared_tags in shared.items():
            if re.search(r"^\.B\s+" + re.escape(name) + r"\s*$", text, re.M):
                opts |= shared_tags
        man_commands.setdefault(m.group(1), set()).update(opts)

    # what the completion script defines, read by bash itself
    names = ["_ckpt_commands", "_ckpt_main_opts"]
    main_help = help_text(ckpt)
    commands = help_commands(main_help)
    report("ckpt --help lists commands", bool(commands), main_help)
    helps = {c: help_text(ckpt, c) for c in commands}
    subs = {c: usage_subcommands(c, helps[c]) for c in commands}
    for c in commands:
        names += [f"_ckpt_opts_{c}"] if not subs[c] else \
            [f"_ckpt_subcommands_{c}"] + [f"_ckpt_opts_{c}_{x.replace('-', '_')}" for x in subs[c]]
    script = f". '{completion}'\n" + "".join(f'echo "{n}="${{{n}}}\n' for n in names)
    script += 'for v in ${!_ckpt_values_*}; do echo "$v="${!v}; done\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout
    comp = {}
    for line in out.splitlines():
        k, _, v = line.partition("=")
        comp[k] = set(v.split())

    paths = {c for c in commands if not subs[c]} | {f"{c} {x}" for c in commands for x in subs[c]}
    compare("the man page documents every command and subcommand of the helps", paths, set(man_commands),
            "ckpt --help and each Usage", "docs/ckpt.1 (.SS ckpt COMMAND [SUBCOMMAND])")
    compare("the completion offers every command of ckpt --help", set(commands),
            comp.get("_ckpt_commands", set()), "ckpt --help", "completion _ckpt_commands")
    top = help_options(main_help)
    compare("ckpt --help options match the man page's OPTIONS", top,
            sections.get(("SH", "OPTIONS"), (set(), []))[0], "ckpt --help", "docs/ckpt.1 OPTIONS")
    compare("ckpt --help options match the completion's", top, comp.get("_ckpt_main_opts", set()),
            "ckpt --help", "completion _ckpt_main_opts")

    for c in commands:
        if subs[c]:
            compare(f"ckpt {c}: the completion offers every subcommand of its Usage", set(subs[c]),
                    comp.get(f"_ckpt_subcommands_{c}", set()), f"ckpt {c} --help",
                    f"completion _ckpt_subcommands_{c}")
        for x in subs[c] or [None]:
            path = c if x is None else f"{c} {x}"
            text = helps[c] if x is None else help_text(ckpt, c, x)
            helps[path] = text
            var = f"_ckpt_opts_{c}" if x is None else f"_ckpt_opts_{c}_{x.replace('-', '_')}"
            opts = help_options(text)
            report(f"ckpt {path} --help prints options", bool(opts), text)
            compare(f"ckpt {path}: --help options match the man page", opts, man_commands.get(path, set()),
                    f"ckpt {path} --help", f"docs/ckpt.1 {path}")
            compare(f"ckpt {path}: --help options match the completion", opts, comp.get(var, set()),
                    f"ckpt {path} --help", f"completion {var}")

    # each choice the completion offers is a word of the help of a command with that option
    for var, values in sorted(comp.items()):
        if not var.startswith("_ckpt_values_"):
            continue
        option = "--" + var[len("_ckpt_values_"):].replace("_", "-")
        texts = [t for c, t in helps.items() if option in help_options(t)]
        words = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*", "\n".join(texts)))
        report(f"completion values of {option} are in the help of a command that takes it",
               bool(texts) and values <= words,
               f"{option}: " + ("no command's --help lists it" if not texts else
                                "not in --help: " + " ".join(sorted(values - words))))
    print(f"# {checks} checks, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
