"""sms_ini: byte-preserving reading and writing of SMS.INI and copy lists."""

import pytest

import sms_testlib as lab
from ansible_collections.sms.hotfix.plugins.module_utils.sms_ini import IniDocument, IniError, copy_list_version

RICH = (
    b"; header \xe9\xff latin-1 bytes\r\n"
    b"[SMS]\r\n"
    b"  CopyListVersion = 41  \r\n"
    b"Key=value=with=equals\r\n"
    b"\r\n"
    b"[servers]\r\n"
    b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR\r\n"
    b"# hash comment\r\n"
    b"[Unknown]\r\n"
    b"Empty=\r\n"
    b"Tail=no final newline"
)


def test_round_trip_is_byte_identical():
    for data in (RICH, lab.sms_ini(), b"", b"[A]\nunix=lf\n", b"[A]\r\nmixed=1\nlines=2\r\n"):
        assert IniDocument.parse(data).to_bytes() == data


def test_get_is_case_insensitive_and_keeps_value_text():
    doc = IniDocument.parse(RICH)
    assert doc.get("sms", "copylistversion") == "41"
    assert doc.get("SERVERS", "current_logon_server") == "\\\\LOGON01\\SMS_SHR"
    assert doc.get("SMS", "Key") == "value=with=equals"
    assert doc.get("Unknown", "Empty") == ""
    assert doc.get("SMS", "Missing", "dflt") == "dflt"
    assert doc.find_key("CURRENT_LOGON_SERVER") == "\\\\LOGON01\\SMS_SHR"
    assert doc.sections() == ["SMS", "servers", "Unknown"]


def test_set_changes_only_the_value():
    doc = IniDocument.parse(RICH)
    assert doc.set("SMS", "CopyListVersion", "42") is True
    assert doc.to_bytes() == RICH.replace(b"CopyListVersion = 41  ", b"CopyListVersion = 42  ")
    assert doc.set("sms", "copylistversion", "42") is False


def test_set_value_at_end_without_newline():
    doc = IniDocument.parse(RICH)
    doc.set("Unknown", "Tail", "changed")
    assert doc.to_bytes() == RICH.replace(b"Tail=no final newline", b"Tail=changed")


def test_insert_missing_key_after_the_sections_last_key_with_crlf():
    doc = IniDocument.parse(lab.sms_ini())
    assert doc.set("Servers", "Logon_Server_List", "LOGON01") is True
    out = doc.to_bytes()
    assert b"Current_Logon_Server=\\\\LOGON01\\SMS_SHR\r\nLogon_Server_List=LOGON01\r\n[Local]\r\n" in out
    assert out.replace(b"Logon_Server_List=LOGON01\r\n", b"") == lab.sms_ini()


def test_insert_key_into_a_last_section_without_final_newline():
    doc = IniDocument.parse(RICH)
    doc.set("Unknown", "New", "1")
    assert doc.to_bytes() == RICH + b"\r\nNew=1\r\n"


def test_insert_missing_section_at_the_end_with_crlf():
    doc = IniDocument.parse(lab.sms_ini())
    doc.set("Local2", "SetupPhase", "installed")
    assert doc.to_bytes() == lab.sms_ini() + b"[Local2]\r\nSetupPhase=installed\r\n"
    doc = IniDocument.parse(RICH)
    doc.set("Local", "SetupPhase", "installed")
    assert doc.to_bytes() == RICH + b"\r\n[Local]\r\nSetupPhase=installed\r\n"


def test_lf_file_keeps_lf():
    doc = IniDocument.parse(b"[A]\nx=1\n")
    doc.set("B", "y", "2")
    assert doc.to_bytes() == b"[A]\nx=1\n[B]\ny=2\n"


@pytest.mark.parametrize(
    "data, line, words",
    [
        (b"[SMS]\r\nCopyListVersion=41\r\nthis is not ini\r\n", 3, "not a [section]"),
        (b"; comment\r\nKey=outside\r\n[SMS]\r\n", 2, "outside any [section]"),
        (b"[SMS]\r\n[Broken\r\n", 2, "not a [section]"),
    ],
)
def test_malformed_lines_are_named(data, line, words):
    with pytest.raises(IniError) as info:
        IniDocument.parse(data, name="C:/SMS.INI")
    assert info.value.line == line
    assert "C:/SMS.INI line %d" % line in info.value.msg and words in info.value.msg


def test_nul_bytes_are_refused():
    with pytest.raises(IniError, match="NUL"):
        IniDocument.parse(b"[SMS]\r\n\x00\x00\r\n")


@pytest.mark.parametrize(
    "data, encoding",
    [
        ("[SMS]\r\nCopyListVersion=41\r\n".encode("utf-16"), "UTF-16 little-endian with a byte-order mark"),
        (b"\xfe\xff" + "[SMS]\r\n".encode("utf-16-be"), "UTF-16 big-endian with a byte-order mark"),
        ("[SMS]\r\nCopyListVersion=41\r\n".encode("utf-16-le"), "UTF-16 little-endian (no byte-order mark)"),
    ],
)
def test_a_utf16_file_is_named_as_such_with_what_to_do(data, encoding):
    with pytest.raises(IniError) as info:
        IniDocument.parse(data, name="C:/SMS.INI")
    assert "C:/SMS.INI is saved as %s" % encoding in info.value.msg
    assert "Encoding: ANSI" in info.value.msg and "NUL" not in info.value.msg


# --- line ends: CR LF, LF and CR only ------------------------------------------

ODD = b"; Setup\x85 done\r\n[SMS]\r\nKey=a\x85b\x0bc\x0cd\x1ce\x1df\x1eg\r\nMac=cr only\rUnix=lf\nLast=1"


def test_only_cr_lf_lf_and_cr_end_a_line():
    doc = IniDocument.parse(ODD)
    assert doc.to_bytes() == ODD
    assert doc.get("SMS", "Key") == "a\x85b\x0bc\x0cd\x1ce\x1df\x1eg"
    assert (doc.get("SMS", "Mac"), doc.get("SMS", "Unix"), doc.get("SMS", "Last")) == ("cr only", "lf", "1")
    assert doc.set("SMS", "Unix", "2") is True
    assert doc.to_bytes() == ODD.replace(b"Unix=lf\n", b"Unix=2\n")


def test_a_malformed_line_after_an_odd_byte_has_its_own_number():
    with pytest.raises(IniError) as info:
        IniDocument.parse(b"; Setup\x85 done\r\n[SMS]\r\nnot ini\x0b here\r\n", name="C:/SMS.INI")
    assert info.value.line == 3 and "C:/SMS.INI line 3" in info.value.msg, info.value.msg


# --- remove ---------------------------------------------------------------------


def test_remove_takes_out_only_that_line():
    data = lab.sms_ini()
    doc = IniDocument.parse(data)
    assert doc.remove("local", "SETUPPHASE") is True
    assert doc.to_bytes() == data.replace(b"SetupPhase=installed\r\n", b"")
    assert doc.get("Local", "SetupPhase") is None and doc.sections() == ["SMS", "Servers", "Local", "Inventory Agent"]
    assert doc.remove("Local", "SetupPhase") is False
    assert doc.remove("Servers", "SetupPhase") is False  # another section's key is not touched
    assert doc.to_bytes() == data.replace(b"SetupPhase=installed\r\n", b"")


def test_remove_the_last_line_without_newline_and_a_key_in_a_duplicated_section():
    doc = IniDocument.parse(RICH)
    assert doc.remove("Unknown", "Tail") is True
    assert doc.to_bytes() == RICH[: -len(b"Tail=no final newline")]
    doc = IniDocument.parse(b"[A]\r\nx=1\r\n[B]\r\nx=2\r\n[a]\r\nx=3\r\n")
    assert doc.remove("A", "x") is True  # the one get() reads: the first
    assert doc.to_bytes() == b"[A]\r\n[B]\r\nx=2\r\n[a]\r\nx=3\r\n"
    assert doc.get("A", "x") == "3"


# --- copy_list_version ------------------------------------------------------------


@pytest.mark.parametrize(
    "data, version",
    [
        (b"[Copy List]\r\nCopyListVersion=42\r\n[Files]\r\nSmsrun32.exe\r\nSmssrv32.exe\r\n", "42"),
        # [Copy List] wins over an earlier section, whatever the case and blanks
        (b"[Other]\r\nCopyListVersion=7\r\n[ copy LIST ]\r\n  copylistversion =  43 \r\n", "43"),
        # the first one of [Copy List]; an empty value does not count
        (b"[Copy List]\r\nCopyListVersion=\r\nCopyListVersion=44\r\nCopyListVersion=45\r\n", "44"),
        # no [Copy List]: the first of any section, or before any section
        (b"CopyListVersion=5\r\n[Files]\r\nCopyListVersion=6\r\n", "5"),
        (b"[Files]\r\nSmsrun32.exe\r\nCopyListVersion=6\r\n", "6"),
        # comments, bare names, broken headers and LF / CR line ends
        (b"; CopyListVersion=1\n# CopyListVersion=2\n[Broken\nname only\n[Copy List]\rCopyListVersion=46\r", "46"),
        # 0x85 does not end a line: the comment stays a comment
        (b"[Copy List]\r\n; was\x85CopyListVersion=99\r\nCopyListVersion=47\r\n", "47"),
        (b"; regenerated\x85CopyListVersion=99\r\n[Files]\r\nSmsrun32.exe\r\n", None),
        # blanks as str.strip sees them are trimmed (0xA0, 0x85 included)
        (b"[Copy List]\r\nCopyListVersion =\t48\xa0\x85\r\n", "48"),
        # text, not a number: the caller decides
        (b"[Copy List]\r\nCopyListVersion= 4 2 \r\n", "4 2"),
        (b"", None),
        (b"[Files]\r\nSmsrun32.exe\r\n", None),
    ],
)
def test_copy_list_version(data, version):
    assert copy_list_version(data) == version
    assert copy_list_version(data.decode("latin-1")) == version


def test_the_client_reads_the_copy_list_with_the_same_parser():
    from ansible_collections.sms.hotfix.plugins.module_utils import sms_client

    assert sms_client.copy_list_version is copy_list_version
