package rules

import (
	"fmt"
	"net/mail"
	"strings"
)

// Contact is an authorized contact of an estate: the person who hears
// about the estate's problems. The MDR document asks for a name, an email
// address and a phone number with its country code, and lets a contact opt
// out of report-type (informational) mail.
type Contact struct {
	Name, Email, Phone string
	// OptOutReports and OptOutAnnouncements turn off the report-type
	// notifications (periodic reports, broadcast announcements); alerts
	// about the estate's problems still reach the contact.
	OptOutReports, OptOutAnnouncements bool
}

// Contacts are an estate's authorized contacts, tried in turn until one
// responds. Primary is required; Secondary and Tertiary are nil when not
// set.
type Contacts struct {
	Primary             Contact
	Secondary, Tertiary *Contact
}

// EstateContacts names an estate and the contacts in effect for it: its
// own, or the enterprise's when it has none.
type EstateContacts struct {
	Estate   string
	Contacts Contacts
}

// EstateContacts lists every estate of the ruleset, the default estate
// ("default", the enterprise's own) first, then in config order, each with
// its effective contacts. An estate whose enterprise has no primary contact
// is listed with a zero Primary (check refuses such a config).
func (rs *Ruleset) EstateContacts() []EstateContacts {
	out := make([]EstateContacts, 0, len(rs.Estates))
	for _, e := range rs.Estates {
		out = append(out, EstateContacts{Estate: e.Name, Contacts: e.Policy.Contacts})
	}
	return out
}

// ContactConfig is the YAML form of a Contact.
type ContactConfig struct {
	Name                string `yaml:"name"`
	Email               string `yaml:"email"`
	Phone               string `yaml:"phone"`
	OptOutReports       bool   `yaml:"opt_out_reports"`
	OptOutAnnouncements bool   `yaml:"opt_out_announcements"`
}

// ContactsConfig is the YAML form of Contacts.
type ContactsConfig struct {
	Primary   *ContactConfig `yaml:"primary"`
	Secondary *ContactConfig `yaml:"secondary"`
	Tertiary  *ContactConfig `yaml:"tertiary"`
}

// contacts validates cf and converts it. at gives the position of a key
// of the policy block ("contacts.primary.email"); label is how errors name
// the contacts block ("policy.contacts"); warn receives what check should
// warn about (a phone without its country code).
func (cf *ContactsConfig) contacts(at func(key string) Pos, label string, warn func(error)) (Contacts, error) {
	var cs Contacts
	if cf.Primary == nil {
		return cs, at("contacts").Errorf("%s: no primary contact; an estate's contacts need at least a primary", label)
	}
	conv := func(role string, f *ContactConfig) (*Contact, error) {
		if f == nil {
			return nil, nil
		}
		k := label + "." + role
		at := func(field string) Pos {
			if field == "" {
				return at("contacts." + role)
			}
			return at("contacts." + role + "." + field)
		}
		if strings.TrimSpace(f.Name) == "" {
			return nil, at("").Errorf("%s.name: empty; every contact needs a name", k)
		}
		if f.Email == "" {
			return nil, at("").Errorf("%s.email: empty; every contact needs an email address", k)
		}
		if a, err := mail.ParseAddress(f.Email); err != nil || a.Address != f.Email {
			return nil, at("email").Errorf("%s.email: %q is not an email address (want name@example.org)", k, f.Email)
		}
		if f.Phone != "" {
			intl, err := checkPhone(f.Phone)
			if err != nil {
				return nil, at("phone").Errorf("%s.phone: %q: %v", k, f.Phone, err)
			}
			if !intl && warn != nil {
				warn(at("phone").Errorf("%s.phone: %q has no country code; write it as +CC followed by the number, e.g. +44 20 7946 0000", k, f.Phone))
			}
		}
		return &Contact{Name: f.Name, Email: f.Email, Phone: f.Phone,
			OptOutReports: f.OptOutReports, OptOutAnnouncements: f.OptOutAnnouncements}, nil
	}
	p, err := conv("primary", cf.Primary)
	if err != nil {
		return cs, err
	}
	cs.Primary = *p
	if cs.Secondary, err = conv("secondary", cf.Secondary); err != nil {
		return cs, err
	}
	if cf.Tertiary != nil && cf.Secondary == nil {
		return cs, at("contacts.tertiary").Errorf("%s.tertiary: set without a secondary; contacts are tried in turn, name the secondary first", label)
	}
	if cs.Tertiary, err = conv("tertiary", cf.Tertiary); err != nil {
		return cs, err
	}
	return cs, nil
}

// checkPhone validates a phone number: digits with optional spaces,
// dashes, dots and parentheses, 7 to 15 digits (E.164), optionally led by
// "+" and the country code. It reports whether the country code is there.
func checkPhone(p string) (international bool, err error) {
	rest, international := strings.CutPrefix(strings.TrimSpace(p), "+")
	digits := 0
	for _, c := range rest {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return false, fmt.Errorf("%q is not allowed in a phone number (digits, spaces, -, ., parentheses, a leading +)", c)
		}
	}
	if digits < 7 || digits > 15 {
		return false, fmt.Errorf("%d digits; a phone number with its country code has 7 to 15", digits)
	}
	if international && strings.HasPrefix(strings.TrimLeft(rest, " (-."), "0") {
		return false, fmt.Errorf("a country code never starts with 0")
	}
	return international, nil
}
