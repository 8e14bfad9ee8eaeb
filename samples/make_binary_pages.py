"""Rebuild the PDF and DOCX pages of the sample handbook.

Usage:  python samples/make_binary_pages.py   (needs: pip install fpdf2 python-docx)

Each page is a list of (kind, text) blocks: h1, h2, p (paragraph) or li (bullet).
Text is kept to Latin-1 so the built-in PDF fonts can render it.
"""
from pathlib import Path

from docx import Document
from fpdf import FPDF

ROOT = Path(__file__).resolve().parent / "handbook"

CODE_OF_CONDUCT = [
    ("h1", "Code of Conduct"),
    ("p", "Owner: Legal & People (Cordelia Haaksma, CFO, and Femke Zwanenburg, VP People). Last reviewed: 2025-10-20."),
    ("h2", "Why we have a Code of Conduct"),
    ("p", "Our values describe how we want to work together. This Code of Conduct sets the minimum standards of behaviour that apply to everyone at Northwind Lattice: employees, contractors, interns and members of the leadership team. It also applies at company events, customer sites, conferences and in online spaces such as Relay."),
    ("h2", "Respect and a harassment-free workplace"),
    ("p", "We do not tolerate harassment, discrimination or bullying of any kind, whether based on gender, gender identity, sexual orientation, ethnicity, religion, age, disability, nationality or any other characteristic. This includes unwelcome comments, jokes, images, physical contact and repeated unwanted invitations."),
    ("li", "Treat colleagues, customers and partners with respect, in person and in writing."),
    ("li", "Speak up, or report it, when you see behaviour that crosses the line."),
    ("li", "Managers must act on every report they receive and involve the People Team within 2 working days."),
    ("h2", "Conflicts of interest"),
    ("p", "A conflict of interest arises when your personal interests could influence, or appear to influence, your decisions at work. Examples are a side business that sells to logistics companies, an investment in a competitor or supplier, or hiring a family member. Declare any potential conflict to your manager and the People Team in Peoplewise before acting on it. Side jobs are allowed if they do not compete with Northwind Lattice and do not affect your work; declare them too."),
    ("h2", "Gifts and hospitality"),
    ("p", "Small gifts and normal business hospitality are fine. Any gift or hospitality with a value above EUR 75 (or USD 80), given or received, must be declared in the gifts register in Peoplewise within 5 working days. Never accept cash or cash equivalents such as gift cards, and never accept gifts from a supplier during a running tender or contract negotiation."),
    ("h2", "Anti-bribery and fair competition"),
    ("p", "We win business on the quality of our product. We never offer, pay or accept bribes, kickbacks or facilitation payments, and we do not share pricing or bidding information with competitors."),
    ("h2", "Confidentiality and customer data"),
    ("p", "Customer data is used only to deliver and support Lattice Planner, and only by people who need it for their work. Company confidential information, such as financials, roadmaps and customer lists, must not be shared outside the company without approval. These duties continue after you leave."),
    ("h2", "Reporting concerns"),
    ("p", "You can raise a concern with your manager, the People Team or Legal. If you prefer, report it through the SpeakUp portal at https://speakup.northwind-lattice.example, which allows anonymous reports and is operated by an independent provider, or email ethics@northwind-lattice.example. Employees in the Netherlands can also contact the external confidential counsellor (vertrouwenspersoon), whose details are on the portal. Every report is acknowledged within 7 days."),
    ("h2", "No retaliation"),
    ("p", "Nobody will suffer any negative consequence for raising a concern in good faith, even if it turns out to be unfounded. Retaliation against someone who reported a concern is itself a serious breach of this Code."),
    ("h2", "Consequences and acknowledgement"),
    ("p", "Breaches of this Code may lead to disciplinary action, up to and including dismissal. Everyone acknowledges the Code during onboarding and again every year in January through the learning portal."),
]

REFUND_POLICY = [
    ("h1", "Refund Policy"),
    ("p", "Owner: Finance (Bram Hoekstein) with Customer Support (Ilse Brandsma). Last reviewed: 2026-01-26. Internal policy for Sales, Support and Finance."),
    ("h2", "Scope"),
    ("p", "This policy explains when customers of Lattice Planner can receive money back, who may approve a refund and how refunds are processed. Service credits for missed uptime commitments are handled separately under Support Tiers and SLAs and are not refunds."),
    ("h2", "Annual plans"),
    ("p", "Customers on annual plans may cancel within 30 days of the contract start date and receive a pro-rata refund for the unused months of the subscription. After the first 30 days, annual subscriptions are non-refundable; the customer keeps access until the end of the paid term. Implementation and training fees are refundable only if the work has not started."),
    ("h2", "Monthly plans"),
    ("p", "Monthly plans are not refunded. Customers can cancel at any time; the cancellation takes effect at the end of the current billing month."),
    ("h2", "Billing errors"),
    ("p", "Duplicate charges, charges after a confirmed cancellation and other billing errors are refunded in full, whenever they are discovered, for up to 12 months back."),
    ("h2", "Approval limits"),
    ("li", "Up to EUR 5,000: Head of Support."),
    ("li", "EUR 5,000 to EUR 25,000: VP Sales."),
    ("li", "Above EUR 25,000: CFO."),
    ("p", "Refunds outside this policy (goodwill refunds) always need approval from the VP Sales, whatever the amount."),
    ("h2", "How to request a refund"),
    ("p", "Support or the account owner creates a ticket with the tag refund-request, stating the customer, contract number, amount and reason. Finance checks the invoice history and routes the request to the right approver."),
    ("h2", "Processing"),
    ("p", "Approved refunds are paid within 14 days of approval, to the original payment method. Refunds are issued in the invoice currency (EUR or USD); Northwind Lattice does not cover exchange-rate differences. Finance confirms the refund to the customer in writing with a credit note."),
]

PARENTAL_LEAVE = [
    ("h1", "Parental Leave Policy"),
    ("p", "Owner: People Team (Femke Zwanenburg, VP People). Last reviewed: 2026-01-08."),
    ("h2", "Our approach"),
    ("p", "Becoming a parent is one of the biggest moments in life. We want every new parent at Northwind Lattice, whatever their gender or how their family grows, to have time to be with their child without worrying about money or their career. Where our policy is more generous than the law, the policy applies."),
    ("h2", "Netherlands"),
    ("li", "Birthing parent: 16 weeks of pregnancy and maternity leave at full salary. The statutory benefit from UWV is topped up by the company to 100% of salary."),
    ("li", "Non-birthing parent (partner): 6 weeks of birth leave at full salary, to be taken within 6 months of the birth. This combines the statutory birth leave and additional birth leave, with the company topping up to 100%."),
    ("li", "Parental leave (ouderschapsverlof): 26 times your weekly working hours per child, to be taken before the child turns 8. Nine weeks of this are paid by UWV at 70% of salary."),
    ("h2", "United States"),
    ("li", "Birthing parent: 14 weeks at full base salary, including any short-term disability benefit."),
    ("li", "Non-birthing parent: 8 weeks at full base salary, to be taken within 12 months of the birth."),
    ("li", "Eligibility: US employees are eligible after 90 days of employment."),
    ("h2", "Adoption, foster care and surrogacy"),
    ("p", "Parents welcoming a child through adoption, long-term foster care or surrogacy receive 8 weeks at full salary in both countries, in addition to any statutory adoption leave in the Netherlands."),
    ("h2", "Planning your leave"),
    ("p", "Please let your manager and the People Team know at least 3 months before the expected due date or placement date, so we can plan cover together. Register your leave in Peoplewise under Time off > Parental leave. Vacation days continue to accrue during parental leave."),
    ("h2", "Returning to work"),
    ("p", "To make the return easier, parents can work 60% of their usual hours at full pay for the first 4 weeks after their leave ends. Performance reviews during a leave period are based on the time worked, and nobody is disadvantaged in promotion decisions because of parental leave."),
]

API_VERSIONING = [
    ("h1", "API Versioning Policy"),
    ("p", "Owner: Public API team (Architecture Group sign-off). Last reviewed: 2026-02-10."),
    ("h2", "Purpose"),
    ("p", "Hundreds of customers integrate their ERP, warehouse and telematics systems with the Lattice Planner API. They need to trust that an integration that works today will keep working. This policy defines how we version the public API and how we retire old versions."),
    ("h2", "Version scheme"),
    ("p", "The major version is part of the URL path, for example https://api.latticeplanner.example/v3/plans. Minor, backwards-compatible improvements are released continuously within a major version and listed in the changelog at https://developers.latticeplanner.example/changelog."),
    ("h2", "Current versions"),
    ("li", "v3: current version, generally available since March 2025. All new integrations must use v3."),
    ("li", "v2: deprecated. Sunset date: September 30, 2026. After that date v2 requests return HTTP 410 Gone."),
    ("li", "v1: retired in 2024."),
    ("p", "We support at most 2 major versions at the same time."),
    ("h2", "Non-breaking changes (allowed within a version)"),
    ("li", "Adding new endpoints, optional request fields or response fields."),
    ("li", "Adding new values to enums documented as extensible."),
    ("li", "Relaxing validation rules or increasing rate limits."),
    ("h2", "Breaking changes (require a new major version)"),
    ("li", "Removing or renaming endpoints or fields, or changing field types."),
    ("li", "Making an optional field required, or tightening validation."),
    ("li", "Changing authentication, pagination or error formats."),
    ("h2", "Deprecation process"),
    ("p", "A major version is announced as deprecated at least 12 months before its sunset date. Deprecated endpoints return the Deprecation and Sunset HTTP headers. Customers still calling a deprecated version receive reminder emails 90, 30 and 7 days before the sunset date, and Technical Account Managers contact Enterprise customers directly."),
    ("h2", "Beta endpoints"),
    ("p", "Endpoints under /v3/beta/ are experimental and may change or disappear with 30 days' notice. Beta endpoints are not covered by support SLAs."),
    ("h2", "Approval"),
    ("p", "Every breaking change and every new major version is reviewed by the API Review Board, which meets every second Thursday. Proposals are submitted as an architecture decision record."),
]

PAGES = {
    "people/code-of-conduct.pdf": CODE_OF_CONDUCT,
    "sales-support/refund-policy.pdf": REFUND_POLICY,
    "people/parental-leave.docx": PARENTAL_LEAVE,
    "engineering/api-versioning-policy.docx": API_VERSIONING,
}


def write_pdf(blocks, path):
    pdf = FPDF()
    pdf.set_title(blocks[0][1])
    pdf.set_author("Northwind Lattice")
    pdf.add_page()
    styles = {"h1": ("B", 18, 10), "h2": ("B", 13, 8), "p": ("", 11, 6), "li": ("", 11, 6)}
    for kind, text in blocks:
        style, size, height = styles[kind]
        pdf.set_font("Helvetica", style, size)
        if kind == "h2":
            pdf.ln(3)
        pdf.multi_cell(0, height, ("- " if kind == "li" else "") + text, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def write_docx(blocks, path):
    doc = Document()
    doc.core_properties.title = blocks[0][1]
    for kind, text in blocks:
        if kind in ("h1", "h2"):
            doc.add_heading(text, level=int(kind[1]))
        elif kind == "li":
            doc.add_paragraph(text, style="List Bullet")
        else:
            doc.add_paragraph(text)
    doc.save(str(path))


if __name__ == "__main__":
    for rel, blocks in PAGES.items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_pdf if path.suffix == ".pdf" else write_docx)(blocks, path)
        print("wrote", path.relative_to(ROOT.parent))
