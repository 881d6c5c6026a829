//! Where personal data lies in a text: the byte spans of e-mail addresses, card numbers and
//! phone numbers. Each scanner walks the text once and allocates nothing until it finds one, so
//! an identifier without personal data costs a few passes over its bytes.

/// `(start, end, label)`: the bytes `start..end` are to be replaced by `label`.
pub type Span = (usize, usize, &'static str);

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// Every address: local part, `@` or `%40`, a dotted domain whose last label has at least two
/// letters. Linear in the text: where the run of local-part bytes before each `@` began is kept
/// as the scan goes, never searched for (scanning back from every `%40` of `%40%40…` was
/// quadratic), and each `@` looks ahead only over the domain bytes that follow it, which end
/// at the next `@` or `%`. A number glued to the local part (`4111 1111 1111 1111ann@…`) is
/// not a card or phone number on its own (it touches a letter), so the address takes it in.
pub fn emails(b: &[u8], out: &mut Vec<Span>) {
    // Start of the run of local-part bytes that ends at `i`, and the end of the last address.
    let (mut run, mut floor) = (0, 0);
    let mut i = 0;
    while i < b.len() {
        let at_len = if b[i] == b'@' {
            1
        } else if b[i..].starts_with(b"%40") {
            3
        } else {
            if !is_local(b[i]) {
                run = i + 1;
            }
            i += 1;
            continue;
        };
        let start = run;
        let mut end = i + at_len;
        while end < b.len() && is_domain(b[end]) {
            end += 1;
        }
        while end > i + at_len && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &b[i + at_len..end];
        let tld = domain.rsplit(|c| *c == b'.').next().unwrap_or_default();
        let dotted = domain.contains(&b'.');
        if start < i && dotted && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            out.push((glued_number_start(b, start, floor), end, "[email]"));
            i = end;
            (run, floor) = (end, end);
        } else {
            // `@` ends the run of local-part bytes; `%40` is made of them and goes on.
            if at_len == 1 {
                run = i + 1;
            }
            i += at_len;
        }
    }
}

/// Where the number that runs into the local part starting at `start` begins: back over digits
/// and the signs and separators of card and phone numbers (`+`, `(`, `)`, and one space or
/// dash after a digit), never before `floor`. `start` itself if the local part starts with no
/// digit. Each byte is walked back over at most once, since `floor` then moves past it.
fn glued_number_start(b: &[u8], start: usize, floor: usize) -> usize {
    let mut s = start;
    if !b[s].is_ascii_digit() {
        return s;
    }
    while s > floor {
        let glued = match b[s - 1] {
            b'0'..=b'9' | b'+' | b'(' | b')' => true,
            b' ' | b'-' => s - 1 > floor && matches!(b[s - 2], b'0'..=b'9' | b')'),
            _ => false,
        };
        if !glued {
            break;
        }
        s -= 1;
    }
    s
}

/// Every run of 13 to 19 digits (single spaces or dashes allowed between digits), not touching
/// a letter, digit or `_` on either side, that starts with 2 to 6 and passes the Luhn check.
/// The boundary keeps digit runs inside hex ids and UUIDs (`4d4111…1111a`) as they are.
pub fn cards(b: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let start = i;
        // The first 19 digits; `n` counts them all, so a longer run is no card.
        let (mut digits, mut n) = ([0u8; 19], 0);
        let mut end = i;
        while end < b.len() {
            if b[end].is_ascii_digit() {
                if let Some(d) = digits.get_mut(n) {
                    *d = b[end] - b'0';
                }
                n += 1;
                end += 1;
            } else if matches!(b[end], b' ' | b'-')
                && b.get(end + 1).is_some_and(u8::is_ascii_digit)
                && b[end - 1].is_ascii_digit()
            {
                end += 1;
            } else {
                break;
            }
        }
        // Card numbers start with 2 to 6 (Mastercard, Amex, Visa, Discover...); millisecond
        // timestamps, also 13 digits, start with 1.
        let touching =
            (start > 0 && is_word(b[start - 1])) || b.get(end).is_some_and(|c| is_word(*c));
        if !touching && (13..=19).contains(&n) && (2..=6).contains(&digits[0]) && luhn(&digits[..n])
        {
            out.push((start, end, "[card]"));
        }
        i = end.max(i + 1);
    }
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Every phone number, in international form (`+`, or `%2B` as in URLs, then 8 to 15 digits) or
/// national form (9 to 15 digits in three or more groups of 2 to 4, separated throughout by
/// spaces or throughout by dashes), one group possibly in parentheses (`(555) 123-4567`). Not
/// touching a letter, digit or `_` on either side. Bare digit runs are left alone: as phone
/// numbers they cannot be told from order numbers and timestamps.
pub fn phones(b: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        let opens = matches!(b[i], b'+' | b'(' | b'%') || b[i].is_ascii_digit();
        let inside = i > 0 && (is_word(b[i - 1]) || b[i - 1] == b'+');
        if !opens || inside {
            i += 1;
            continue;
        }
        let (end, phone) = phone_at(b, i);
        if phone {
            out.push((i, end, "[phone]"));
        }
        i = end.max(i + 1);
    }
}

/// The end of the phone-like run at `start`, and whether it is a phone number.
fn phone_at(b: &[u8], start: usize) -> (usize, bool) {
    let rest = &b[start..];
    let plus = match rest[0] {
        b'+' => 1,
        b'%' if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2b") => 3,
        b'%' => return (start + 1, false),
        _ => 0,
    };
    let mut j = start + plus;
    let (mut digits, mut groups, mut paren) = (0, 0, false);
    let (mut spaces, mut dashes, mut uneven) = (false, false, false);
    let group_follows = |k: usize| b.get(k).is_some_and(|c| c.is_ascii_digit() || *c == b'(');
    loop {
        let open = !paren && b.get(j) == Some(&b'(');
        if open {
            paren = true;
            j += 1;
        }
        let g = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if g == 0 {
            return (j.max(start + 1), false);
        }
        j += g;
        digits += g;
        groups += 1;
        uneven |= !(2..=4).contains(&g);
        if open {
            if b.get(j) != Some(&b')') {
                return (j, false);
            }
            j += 1;
        }
        // The separator after a group in parentheses is free: `(555) 123-4567`.
        match b.get(j) {
            Some(b' ') if group_follows(j + 1) => spaces |= !open,
            Some(b'-') if group_follows(j + 1) => dashes |= !open,
            _ if open && group_follows(j) => continue,
            _ => break,
        }
        j += 1;
    }
    let touching = b.get(j).is_some_and(|c| is_word(*c));
    let phone = if plus > 0 {
        (8..=15).contains(&digits)
    } else {
        (9..=15).contains(&digits) && groups >= 3 && !uneven && !(spaces && dashes)
    };
    (j, phone && !touching)
}
